"""Generated cases of known answer for bench/accuracy.py (and `tcme run --generate`).

``cases(rng, count)`` -> ``[(inputs per party, expected outputs)]``.
"""

from __future__ import annotations

import random
from typing import Any

ITEMS = ("car", "house", "boat", "bicycle")
DAMAGED = (
    "A large tree fell onto the {item} during the storm and crushed it.",
    "Hail left deep dents and cracks all over the {item}.",
    "The {item} caught fire last night and was badly burned.",
    "Flood water reached the {item} and ruined it.",
    "A truck reversed into the {item} and broke it.",
)
UNDAMAGED = (
    "The {item} was inspected this morning and is in perfect condition.",
    "The storm passed, and the {item} was not touched at all.",
    "Nothing happened to the {item}; it is exactly as before.",
    "The {item} stayed safely locked away and has no damage.",
)


def cases(rng: random.Random, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Half damaged, half not; the reported item is always the insured one."""
    out = []
    for index in range(count):
        item = rng.choice(ITEMS)
        damaged = index % 2 == 0
        template = rng.choice(DAMAGED if damaged else UNDAMAGED)
        inputs = {
            "reporter": {"description": template.format(item=item)},
            "insurer": {"insured_item": item},
        }
        out.append((inputs, {"damaged": "YES" if damaged else "NO"}))
    return out
