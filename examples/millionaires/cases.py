"""Generated cases of known answer for bench/accuracy.py (and `tcme run --generate`).

``cases(rng, count)`` -> ``[(inputs per party, expected outputs)]``.
"""

from __future__ import annotations

import random
from typing import Any

MAX_WEALTH = 1_000_000_000  # the contract's input range


def cases(rng: random.Random, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Alice richer, Bob richer and equal in turn, with wealth drawn across the range."""
    out = []
    for index in range(count):
        alice = rng.randint(1, MAX_WEALTH)
        bob = [rng.randint(0, alice - 1), rng.randint(alice + 1, MAX_WEALTH + 1), alice][index % 3]
        bob = min(bob, MAX_WEALTH)
        answer = "first" if alice > bob else "second" if bob > alice else "equal"
        out.append(
            ({"alice": {"alice_wealth": alice}, "bob": {"bob_wealth": bob}}, {"richer": answer})
        )
    return out
