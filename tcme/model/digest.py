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

# Reads of 4 MiB keep syscall overhead low when one thread reads and hashes.
CHUNK_BYTES = 4 << 20
# The single-stream capture pipeline (measured with bench/model_digest.py on a 2-core
# Xeon VM): about 8 MiB in flight does best. Larger footprints fall out of cache
# before the next stage touches them, and bigger chunks lengthen the pipeline's fill
# and drain, which a 100 MB model feels (4 x 4 MiB was ~10 % slower there).
_PIPELINE_CHUNK_BYTES = 1 << 20
_PIPELINE_BUFFERS = 8
# Pages of the capture memfd are allocated in steps this large (fallocate is far
# cheaper than allocating page by page on write); small enough that one step does
# not hold up the writer for longer than the buffers in flight cover.
_RESERVE_STEP = 16 << 20

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
                # One SHA-256 stream: hash here; reading and the memfd copy run on helpers.
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
    """Like :func:`_hash_range` with a sink, with every copy moved off the hashing thread.

    Three stages share ``_PIPELINE_BUFFERS`` private buffers: a reader thread
    preads the file into free buffers, this thread hashes them in file order,
    and a writer thread reserves memfd pages and writes each hashed buffer at
    its offset before freeing it. One SHA-256 stream cannot be split, so this
    thread does nothing but hash: that keeps the capture as fast as hashing
    alone whenever a second core is free (both copies, the page allocation
    and every syscall run there).

    Why the memfd holds exactly the hashed bytes: a buffer is filled once by
    the reader, reaches the writer only after it was hashed, is not changed
    by anyone while it is hashed or written, and goes back to the reader only
    after the writer has written it. Each offset is written once, by the
    writer, from the buffer hashed for that offset. Nothing outside this
    process can write the memfd (no path, close-on-exec descriptor) and after
    :meth:`SealedMemfd.seal` nobody can. Mapping the memfd instead, reading
    the file straight into the mapping and hashing the mapping, was measured
    slower on the 2-core benchmark VM: first-touch faults of the mapped pages
    (which shmem zeroes on fault) cost more than the ``pwrite`` they replace,
    and hashing from a large mapping is slower than from a cache-hot buffer.
    """
    free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
    filled: queue.SimpleQueue[tuple[bytearray, int, int] | None] = queue.SimpleQueue()
    hashed: queue.SimpleQueue[tuple[bytearray, int, int] | None] = queue.SimpleQueue()
    for _ in range(_PIPELINE_BUFFERS):
        free.put(bytearray(_PIPELINE_CHUNK_BYTES))
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        offset = task.start
        try:
            while offset < task.end and not stop.is_set():
                buffer = free.get()
                if buffer is None:  # the hashing thread gave up
                    return
                want = min(_PIPELINE_CHUNK_BYTES, task.end - offset)
                with memoryview(buffer) as view:
                    got = os.preadv(fd, [view[:want]], offset)
                if got == 0:
                    raise _shrunk(task, offset)
                filled.put((buffer, offset, got))
                offset += got
        except BaseException as err:  # re-raised on the hashing thread
            failures.append(err)
            stop.set()
        finally:
            filled.put(None)

    def writer() -> None:
        reserved = task.start
        while (item := hashed.get()) is not None:
            buffer, offset, length = item
            if not stop.is_set():
                try:
                    while reserved < offset + length:
                        step = min(_RESERVE_STEP, task.end - reserved)
                        sink.reserve(reserved, step)
                        reserved += step
                    with memoryview(buffer) as view:
                        sink.write_at(view[:length], offset)
                except BaseException as err:  # re-raised on the hashing thread
                    failures.append(err)
                    stop.set()
            # Freed even after a failure, so the reader never waits forever.
            free.put(buffer)

    threads = [
        threading.Thread(target=reader, name="tcme-capture-reader", daemon=True),
        threading.Thread(target=writer, name="tcme-memfd-writer", daemon=True),
    ]
    for thread in threads:
        thread.start()
    hasher = hashlib.sha256()
    try:
        # Stops early when a helper failed; a finished reader ends the stream with None.
        while not stop.is_set() and (item := filled.get()) is not None:
            buffer, _offset, length = item
            with memoryview(buffer) as view:
                hasher.update(view[:length])
            hashed.put(item)
            progress.advance(length)
    except BaseException:
        stop.set()  # the helpers drop their work; the caller closes the memfd
        raise
    finally:
        free.put(None)  # wakes a reader waiting for a buffer
        hashed.put(None)  # the writer finishes the hashed buffers first (FIFO)
        for thread in threads:
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
