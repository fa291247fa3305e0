"""Model digest throughput and verified-load overhead, against baselines in the same run.

Baselines:
* ``openssl dgst -sha256 FILE``: the hardware-accelerated (SHA-NI) single-core
  limit. (``sha256sum`` is a software implementation here and far slower, so
  it is no baseline.)
* plain ``llama_cpp.Llama(model_path=...)`` for model loading.

Measured for the default model and for a generated 2 GB file (under /tmp,
deleted afterwards):
* ``verify``: ``tcme.model.verify_model`` (signature check + hashing from disk);
* ``verify+capture``: the loader's path, which also copies every byte into a
  sealed memfd as it hashes (the bytes llama.cpp is then given);
each with one SHA-256 stream (``files`` serialization) and sharded over all
cores (``shards`` serialization, SHARD_SIZE). Every number is the best of
``--repeat`` runs with a warm page cache; freeing a capture (which happens
when a model is closed, not while it loads) is not timed.

``--digest-only`` measures the hashing engine alone (no signature, no
llama.cpp; only the standard library is needed), for machines without the
project's environment. Run: ``python bench/model_digest.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tcme.model.digest import Serialization, hash_model, usable_cpus  # noqa: E402
from tcme.model.fetch import default_model_path  # noqa: E402
from tcme.model.layout import ModelFile  # noqa: E402

SHARD_SIZE = 16 << 20
BIG_FILE_BYTES = 2 * 1000**3
DEFAULT_MODEL_BYTES = 98_362_432


@runtime_checkable
class Closable(Protocol):
    """What both contenders load: a model that frees its memory on ``close()``."""

    def close(self) -> None:
        """Free the model."""


def _keep(_result: object) -> None:
    return None


def _close_capture(result: object) -> None:
    # Freeing the memfd happens when a loaded model is closed, not while loading.
    captured = getattr(getattr(result, "hashed", result), "captured", None)
    if captured is not None:
        captured.close()


def best_of(
    repeat: int, action: Callable[[], object], cleanup: Callable[[object], None] = _keep
) -> float:
    """Smallest wall time of ``repeat`` runs of ``action`` (``cleanup`` of its result untimed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
        cleanup(result)
    return best


def openssl_seconds(path: Path, repeat: int) -> float:
    """Best wall time of ``openssl dgst -sha256 path``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("openssl not found: it is the baseline")
    command = [openssl, "dgst", "-sha256", str(path)]
    return best_of(repeat, lambda: subprocess.run(command, check=True, capture_output=True))


def make_file(directory: Path, name: str, size: int) -> Path:
    """``size`` bytes of random-looking data (a 64 MiB random block, varied per block)."""
    path = directory / name
    block = bytearray(os.urandom(min(64 << 20, size)))
    with open(path, "wb") as sink:
        written, counter = 0, 0
        while written < size:
            block[:8] = counter.to_bytes(8, "little")
            piece = memoryview(block)[: min(len(block), size - written)]
            sink.write(piece)
            written += len(piece)
            counter += 1
        sink.flush()
        os.fsync(sink.fileno())  # no writeback competing with the measurements
    return path


def warm(path: Path) -> None:
    """Pull the file into the page cache so every contender starts warm."""
    with open(path, "rb") as handle:
        while handle.read(8 << 20):
            pass


def _row(label: str, name: str, size: int, seconds: float, baseline: float) -> str:
    rate = size / seconds / 1e6
    return (
        f"| {label} | {name} | {seconds * 1000:8.1f} | {rate:6.0f} | {baseline / seconds:5.2f}x |"
    )


def engine_rows(label: str, path: Path, repeat: int) -> list[str]:
    """The hashing engine alone (no signature): what ``--digest-only`` measures."""
    files = [ModelFile(".", path)]
    size = path.stat().st_size
    warm(path)
    baseline = openssl_seconds(path, repeat)
    cores = usable_cpus()
    single, sharded = Serialization("files"), Serialization("shards", shard_size=SHARD_SIZE)
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("hash, 1 stream", lambda: hash_model(files, single)),
        (f"hash, sharded x{cores}", lambda: hash_model(files, sharded)),
        ("hash+capture, 1 stream", lambda: hash_model(files, single, capture=".")),
        (f"hash+capture, sharded x{cores}", lambda: hash_model(files, sharded, capture=".")),
    ]
    rows = [_row(label, "openssl dgst -sha256 (baseline)", size, baseline, baseline)]
    for name, action in contenders:
        rows.append(_row(label, name, size, best_of(repeat, action, _close_capture), baseline))
    return rows


def verify_rows(label: str, model: Path, keys: tuple[Path, Path], repeat: int) -> list[str]:
    """Table rows for one file: openssl, then verify / verify+capture as ratios to it."""
    from tcme.model import ModelVerifier, sign_model, verify_model
    from tcme.model.verify import verify_and_capture

    private_key, public_key = keys
    work = Path(tempfile.mkdtemp(prefix="tcme-bench-sig-"))
    files_sig, shards_sig = work / "files.sig", work / "shards.sig"
    sign_model(model, files_sig, private_key=private_key)
    sign_model(model, shards_sig, private_key=private_key, shard_size=SHARD_SIZE)
    verifier = ModelVerifier.public_key(public_key)
    size = model.stat().st_size
    warm(model)
    baseline = openssl_seconds(model, repeat)

    def capture(signature: Path) -> Callable[[], object]:
        return lambda: verify_and_capture(model, signature, verifier, capture=".")

    cores = usable_cpus()
    contenders: list[tuple[str, Callable[[], object]]] = [
        ("verify, 1 stream (files)", lambda: verify_model(model, files_sig, verifier)),
        (f"verify, sharded x{cores}", lambda: verify_model(model, shards_sig, verifier)),
        ("verify+capture, 1 stream", capture(files_sig)),
        (f"verify+capture, sharded x{cores}", capture(shards_sig)),
    ]
    rows = [_row(label, "openssl dgst -sha256 (baseline)", size, baseline, baseline)]
    for name, action in contenders:
        rows.append(_row(label, name, size, best_of(repeat, action, _close_capture), baseline))
    shutil.rmtree(work)
    return rows


def load_rows(model: Path, keys: tuple[Path, Path], repeat: int) -> list[str]:
    """Plain Llama load vs. verified load from a sealed memfd."""
    from llama_cpp import Llama

    from enclave.model_loader import load_verified_model
    from tcme.model import ModelVerifier, sign_model

    private_key, public_key = keys
    work = Path(tempfile.mkdtemp(prefix="tcme-bench-load-"))
    files_sig, shards_sig = work / "files.sig", work / "shards.sig"
    sign_model(model, files_sig, private_key=private_key)
    sign_model(model, shards_sig, private_key=private_key, shard_size=SHARD_SIZE)
    verifier = ModelVerifier.public_key(public_key)
    warm(model)

    def plain() -> object:
        return Llama(model_path=str(model), verbose=False)

    def verified(signature: Path) -> Callable[[], object]:
        return lambda: load_verified_model(model, signature, verifier, verbose=False)

    def close(loaded: object) -> None:  # untimed, for both contenders
        assert isinstance(loaded, Closable)
        loaded.close()

    close(plain())  # the first load pays one-off library initialisation
    baseline = best_of(repeat, plain, close)
    rows = [f"| plain `Llama(model_path=...)` (baseline) | {baseline * 1000:8.1f} | 1.00x |"]
    for name, signature in (("1 stream (files)", files_sig), ("sharded", shards_sig)):
        seconds = best_of(repeat, verified(signature), close)
        rows.append(
            f"| verified load, {name} | {seconds * 1000:8.1f} | {seconds / baseline:5.2f}x |"
        )
    shutil.rmtree(work)
    return rows


def main() -> int:
    """Print the benchmark tables (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-bytes", type=int, default=BIG_FILE_BYTES)
    parser.add_argument("--skip-big", action="store_true", help="skip the generated 2 GB file")
    parser.add_argument("--skip-load", action="store_true", help="skip llama.cpp loading")
    parser.add_argument(
        "--digest-only", action="store_true", help="hashing engine only (standard library)"
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tcme-bench-", dir="/tmp"))
    try:
        model = default_model_path(REPO / "models")
        if not model.is_file():
            if not args.digest_only:
                from tcme.model.fetch import fetch_default_model

                model = fetch_default_model(REPO / "models", quiet=True)
            else:  # a stand-in of the same size
                model = make_file(scratch, "default-size.bin", DEFAULT_MODEL_BYTES)
        targets = [(f"{model.name} ({model.stat().st_size / 1e6:.0f} MB)", model)]
        if not args.skip_big:
            big = make_file(scratch, "big-model.bin", args.big_bytes)
            targets.append((f"generated ({args.big_bytes / 1e9:.1f} GB)", big))

        cpu = f"{_cpu_name()}, {usable_cpus()} usable cores"
        print(f"# model digest — {cpu}, shard size {SHARD_SIZE}")
        print()
        print("| file | contender | ms (best) | MB/s | vs openssl |")
        print("|---|---|---:|---:|---:|")
        keys: tuple[Path, Path] | None = None
        if not args.digest_only:
            from tcme.model import generate_signing_key

            keys = generate_signing_key(scratch / "keys")
        for label, path in targets:
            rows = (
                engine_rows(label, path, args.repeat)
                if keys is None
                else verify_rows(label, path, keys, args.repeat)
            )
            for row in rows:
                print(row, flush=True)
        if keys is not None and not args.skip_load:
            print()
            print(f"| load {model.name} | ms (best) | vs plain |")
            print("|---|---:|---:|")
            for row in load_rows(model, keys, args.repeat):
                print(row, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
