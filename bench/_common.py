"""Helpers every benchmark shares: where the vectors are, and interleaved timing."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def vectors_root() -> Path | None:
    """$TCME_VECTORS or ../shared/vectors, if present."""
    for candidate in (os.environ.get("TCME_VECTORS"), str(REPO.parent / "shared" / "vectors")):
        if candidate and (Path(candidate) / "manifest.json").is_file():
            return Path(candidate)
    return None


def interleaved_medians(
    funcs: list[Callable[[], object]], rounds: int, warmup: int = 10
) -> list[float]:
    """Median seconds per call of each function, calling them in turn each round.

    Interleaving makes the ratio between functions robust to this machine's noise:
    a slow moment hits every contender alike.
    """
    for _ in range(warmup):
        for func in funcs:
            func()
    samples: list[list[float]] = [[] for _ in funcs]
    clock = time.perf_counter
    for _ in range(rounds):
        for index, func in enumerate(funcs):
            start = clock()
            func()
            samples[index].append(clock() - start)
    return [statistics.median(s) for s in samples]
