"""Generated cases of known answer for bench/accuracy.py (and `tcme run --generate`).

``cases(rng, count)`` -> ``[(inputs per party, expected outputs)]``.
"""

from __future__ import annotations

import random
from typing import Any

PLANS = {
    "biology": (
        "We will sequence the genomes of soil bacteria to discover new enzymes.",
        "We will study how cells repair damaged DNA in mice.",
        "We will breed drought resistant rice plants.",
    ),
    "chemistry": (
        "We will synthesise new catalysts for turning carbon dioxide into fuel.",
        "We will design better polymers for recyclable plastics.",
        "We will measure reaction rates of organic molecules in water.",
    ),
    "computing": (
        "We will build a faster compiler for Python programs.",
        "We will train neural networks to translate between programming languages.",
        "We will design a new database index for large computer clusters.",
    ),
    "physics": (
        "We will measure gravitational waves from merging neutron stars.",
        "We will build a quantum sensor from trapped ions.",
        "We will study superconductivity in thin metal films at low temperature.",
    ),
}


def cases(rng: random.Random, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Half same-field pairs (compete), half different fields (no-compete)."""
    out = []
    fields = sorted(PLANS)
    for index in range(count):
        first = rng.choice(fields)
        same = index % 2 == 0
        second = first if same else rng.choice([f for f in fields if f != first])
        plan_a = rng.choice(PLANS[first])
        plan_b = rng.choice([p for p in PLANS[second] if p != plan_a])
        inputs = {"lab_a": {"plan_a": plan_a}, "lab_b": {"plan_b": plan_b}}
        out.append((inputs, {"verdict": "compete" if same else "no-compete"}))
    return out
