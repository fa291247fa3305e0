"""Hashing a model the way the OpenSSF model signing format defines it.

Two serializations exist. ``files``: one SHA-256 per file. ``shards``: one
SHA-256 per fixed-size shard (``path:start:end``), which lets every core hash
a part of one large file. Both produce the same resource names, algorithms
and digests as model-signing (a test compares the manifests).

One file may be *captured*: its bytes are copied into a memfd while being
hashed, and the memfd is sealed afterwards, so what a loader hands to
llama.cpp is exactly what was hashed (see :mod:`tcme.model.memfd`). Reads go
through one descriptor opened once; hashlib releases the GIL on large
buffers, so threads give real parallelism.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from attestation.errors import SignatureError

from .layout import ModelFile
from .memfd import SealedMemfd
from .progress import Progress

# Reads of 4 MiB keep syscall and thread hand-off overhead low; measured on a 2-core
# Xeon (bench/model_digest.py), 1 MiB chunks made the pipelined capture ~6 % slower.
CHUNK_BYTES = 4 << 20
# Pages of the capture memfd are allocated in steps this large (fallocate is far
# cheaper than allocating page by page on write).
_RESERVE_STEP = 64 << 20
_PIPELINE_BUFFERS = 4

SUPPORTED_HASHES = ("sha256",)
MIN_SHARD_SIZE = 1 << 20


@dataclass(frozen=True)
class Serialization:
    """How a model is cut into resources and hashed."""

    method: Literal["files", "shards"]
    hash_algorithm: str = "sha256"
    shard_size: int | None = None

    def __post_init__(self) -> None:
        if self.method == "shards" and (self.shard_size is None or self.shard_size <= 0):
            raise ValueError("shard serialization needs a positive shard_size")

    @property
    def resource_algorithm(self) -> str:
        """The per-resource algorithm model-signing writes (``sha256-sharded-N`` for shards)."""
        if self.method == "shards":
            return f"{self.hash_algorithm}-sharded-{self.shard_size}"
        return self.hash_algorithm

    def params(self, *, allow_symlinks: bool, ignore_paths: Sequence[str]) -> dict[str, Any]:
        """The ``predicate.serialization`` object a signer records."""
        params: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_algorithm,
            "allow_symlinks": allow_symlinks,
        }
        if self.method == "shards":
            params["shard_size"] = self.shard_size
        if ignore_paths:
            params["ignore_paths"] = list(ignore_paths)
        return params

    def describe(self) -> str:
        """``files/sha256`` or ``shards/sha256/<size>``."""
        if self.method == "shards":
            return f"shards/{self.hash_algorithm}/{self.shard_size}"
        return f"files/{self.hash_algorithm}"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class HashResult:
    """Digests of every resource, and the captured file when one was asked for."""

    resources: dict[str, tuple[str, str]]
    """Resource name -> (algorithm, hex digest)."""
    captured: SealedMemfd | None = None
    captured_name: str | None = None
    captured_digest: str | None = None
    """Hex SHA-256 of the captured file (files), or of its shard digests in order (shards)."""
    bytes_hashed: int = 0


@dataclass(frozen=True)
class _Task:
    file: ModelFile
    start: int
    end: int
    resource: str


def hash_model(
    files: Sequence[ModelFile],
    serialization: Serialization,
    *,
    capture: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> HashResult:
    """Hash every file under ``serialization``; capture the file named ``capture`` if given.

    The captured memfd comes back sealed. On any error it is closed before
    the error propagates.
    """
    if serialization.hash_algorithm not in SUPPORTED_HASHES:
        raise ValueError(f"unsupported hash {serialization.hash_algorithm}")
    sizes = {f.name: os.stat(f.path).st_size for f in files}
    total = sum(sizes.values())
    progress = progress or Progress("hashing", total)
    workers = max(1, workers or usable_cpus())

    captured_fd = -1
    memfd: SealedMemfd | None = None
    try:
        if capture is not None:
            target = next((f for f in files if f.name == capture), None)
            if target is None:
                raise ValueError(f"{capture} is not a file of the model")
            captured_fd = os.open(target.path, os.O_RDONLY | os.O_CLOEXEC)
            # The captured size comes from the descriptor we read, not a path lookup.
            sizes[capture] = os.fstat(captured_fd).st_size
            label = f"tcme-model:{os.path.basename(target.path)}"[:200]  # names are <= 249 bytes
            memfd = SealedMemfd(label, sizes[capture])
        tasks = _plan(files, serialization, sizes)
        digests = _run(tasks, serialization, capture, captured_fd, memfd, progress, workers)
        if memfd is not None:
            memfd.seal()
    except BaseException:
        if memfd is not None:
            memfd.close()
        raise
    finally:
        if captured_fd >= 0:
            os.close(captured_fd)
    progress.finish()

    algorithm = serialization.resource_algorithm
    resources = {task.resource: (algorithm, digests[task.resource].hex()) for task in tasks}
    result = HashResult(resources=resources, bytes_hashed=total)
    if capture is not None:
        own = [t for t in tasks if t.file.name == capture]
        if serialization.method == "files":
            captured_digest = digests[own[0].resource].hex()
        else:
            combined = hashlib.sha256()
            for task in sorted(own, key=lambda t: t.start):
                combined.update(digests[task.resource])
            captured_digest = combined.hexdigest()
        result.captured = memfd
        result.captured_name = capture
        result.captured_digest = captured_digest
    return result


def _plan(
    files: Sequence[ModelFile], serialization: Serialization, sizes: dict[str, int]
) -> list[_Task]:
    tasks: list[_Task] = []
    for model_file in files:
        size = sizes[model_file.name]
        if serialization.method == "files":
            tasks.append(_Task(model_file, 0, size, model_file.name))
            continue
        shard = serialization.shard_size
        assert shard is not None
        # As model-signing: equal shards, a shorter last one, none for an empty file.
        for start in range(0, size, shard):
            end = min(start + shard, size)
            tasks.append(_Task(model_file, start, end, f"{model_file.name}:{start}:{end}"))
    return tasks


def _run(
    tasks: list[_Task],
    serialization: Serialization,
    capture: str | None,
    captured_fd: int,
    memfd: SealedMemfd | None,
    progress: Progress,
    workers: int,
) -> dict[str, bytes]:
    def one(task: _Task) -> tuple[str, bytes]:
        if task.file.name == capture:
            assert memfd is not None
            if serialization.method == "files":
                # One SHA-256 stream: hash here, copy into the memfd on another thread.
                digest = _hash_range_pipelined(captured_fd, task, memfd, progress)
            else:
                digest = _hash_range(captured_fd, task, progress, sink=memfd)
            return task.resource, digest
        fd = os.open(task.file.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            until_eof = serialization.method == "files"
            return task.resource, _hash_range(fd, task, progress, until_eof=until_eof)
        finally:
            os.close(fd)

    if workers == 1 or len(tasks) <= 1:
        return dict(one(task) for task in tasks)
    # Largest first, so one big file does not start last and run alone.
    ordered = sorted(tasks, key=lambda t: t.end - t.start, reverse=True)
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return dict(pool.map(one, ordered))


def _hash_range(
    fd: int,
    task: _Task,
    progress: Progress,
    *,
    sink: SealedMemfd | None = None,
    until_eof: bool = False,
) -> bytes:
    """SHA-256 of ``[start, end)`` (or to EOF), optionally copied into ``sink`` (same offset)."""
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    offset, end = task.start, task.end
    if sink is not None:
        sink.reserve(offset, end - offset)
    while until_eof or offset < end:
        want = CHUNK_BYTES if until_eof else min(CHUNK_BYTES, end - offset)
        got = os.preadv(fd, [view[:want]], offset)
        if got == 0:
            if until_eof:
                break
            raise _shrunk(task, offset)
        chunk = view[:got]
        hasher.update(chunk)
        if sink is not None:
            sink.write_at(chunk, offset)
        offset += got
        progress.advance(got)
    return hasher.digest()


def _hash_range_pipelined(fd: int, task: _Task, sink: SealedMemfd, progress: Progress) -> bytes:
    """Like :func:`_hash_range` with a sink, but the memfd writes run on a second thread.

    A buffer goes to the writer only after it was hashed, and comes back to
    the reader only after it was written, so the memfd receives exactly the
    hashed bytes.
    """
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    filled: queue.SimpleQueue[tuple[bytearray, int, int] | None] = queue.SimpleQueue()
    for _ in range(_PIPELINE_BUFFERS):
        free.put(bytearray(CHUNK_BYTES))
    failures: list[BaseException] = []

    def writer() -> None:
        reserved = task.start
        while (item := filled.get()) is not None:
            buffer, offset, length = item
            if not failures:
                try:
                    while reserved < offset + length:
                        step = min(_RESERVE_STEP, task.end - reserved)
                        sink.reserve(reserved, step)
                        reserved += step
                    sink.write_at(memoryview(buffer)[:length], offset)
                except BaseException as err:  # handed to the reader thread below
                    failures.append(err)
            free.put(buffer)

    thread = threading.Thread(target=writer, name="tcme-memfd-writer", daemon=True)
    thread.start()
    hasher = hashlib.sha256()
    offset = task.start
    try:
        while offset < task.end:
            if failures:
                raise failures[0]
            buffer = free.get()
            view = memoryview(buffer)
            got = os.preadv(fd, [view[: min(CHUNK_BYTES, task.end - offset)]], offset)
            if got == 0:
                free.put(buffer)
                raise _shrunk(task, offset)
            hasher.update(view[:got])
            view.release()
            filled.put((buffer, offset, got))
            offset += got
            progress.advance(got)
    finally:
        filled.put(None)
        thread.join()
    if failures:
        raise failures[0]
    return hasher.digest()


def _shrunk(task: _Task, offset: int) -> SignatureError:
    return SignatureError(
        f"model.file_changed[{task.file.name}]",
        "the file became shorter while it was being read",
        expected=f"{task.end} bytes",
        actual=f"{offset} bytes",
    )
