"""Shared fixtures: the real evidence vectors live outside the repository.

They are read from ``$TCME_VECTORS`` or ``../shared/vectors`` (beside the
checkout) and never copied in. When neither exists, tests that need them skip
and say why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def vectors_root() -> Path | None:
    """The vectors folder, or None when this machine has none."""
    env = os.environ.get("TCME_VECTORS")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "vectors")
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    return None


SKIP_NO_VECTORS = (
    "real evidence vectors not found: set TCME_VECTORS or place them in ../shared/vectors"
)


@pytest.fixture(scope="session")
def vectors() -> Path:
    """Root of the real vectors; skips (with the reason) when absent."""
    root = vectors_root()
    if root is None:
        pytest.skip(SKIP_NO_VECTORS)
    return root


@pytest.fixture(scope="session")
def vector(vectors: Path):  # noqa: ANN201 - returns a callable
    """``vector("snp/ms_milan_v3/report.bin")`` -> Path, checked against manifest.json."""
    manifest = json.loads((vectors / "manifest.json").read_text())
    files = manifest.get("files", manifest)
    known = {f["file"] for f in files} if isinstance(files, list) else set(files)

    def _get(relative: str) -> Path:
        path = vectors / relative
        if known and relative not in known and not path.is_dir():
            raise AssertionError(f"{relative} is not listed in vectors/manifest.json")
        if not path.exists():
            pytest.skip(f"vector {relative} missing under {vectors}")
        return path

    return _get
