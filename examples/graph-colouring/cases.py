"""Generated cases of known answer for bench/accuracy.py (and `tcme run --generate`).

``cases(rng, count)`` -> ``[(inputs per party, expected outputs)]``.
"""

from __future__ import annotations

import random
from typing import Any

COLOURS = ("red", "green", "blue")


def _graph(rng: random.Random) -> tuple[int, list[list[int]]]:
    vertices = rng.randint(3, 5)
    pairs = [[a, b] for a in range(vertices) for b in range(a + 1, vertices)]
    edges = rng.sample(pairs, rng.randint(2, min(5, len(pairs))))
    return vertices, sorted(edges)


def _valid(edges: list[list[int]], colouring: dict[str, str]) -> bool:
    return all(colouring[str(a)] != colouring[str(b)] for a, b in edges)


def cases(rng: random.Random, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Half valid colourings, half with exactly one clashing edge."""
    out: list[tuple[dict[str, Any], dict[str, str]]] = []
    while len(out) < count:
        vertices, edges = _graph(rng)
        want_valid = len(out) % 2 == 0
        colouring = {str(v): rng.choice(COLOURS) for v in range(vertices)}
        if _valid(edges, colouring) != want_valid:
            continue
        inputs = {"verifier": {"edges": edges}, "prover": {"colouring": colouring}}
        out.append((inputs, {"validity": "valid" if want_valid else "invalid"}))
    return out
