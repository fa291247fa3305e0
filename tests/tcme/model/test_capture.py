"""Capturing a file into a sealed memfd while hashing it, and every way that fails closed."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
from pathlib import Path

import pytest

from attestation.errors import SignatureError
from tcme.model import digest
from tcme.model.digest import CHUNK_BYTES, MIN_SHARD_SIZE, Serialization, hash_model
from tcme.model.layout import ModelFile
from tcme.model.memfd import ALL_SEALS, SealedMemfd
from tcme.model.progress import Progress

# Several chunks and an odd tail, so every stage of the pipeline sees more than one buffer.
SIZE = 3 * CHUNK_BYTES + 12345
SERIALIZATIONS = [
    pytest.param(Serialization("files"), id="files"),
    pytest.param(Serialization("shards", shard_size=MIN_SHARD_SIZE), id="shards"),
]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def weights(tmp_path: Path, payload: bytes) -> ModelFile:
    path = tmp_path / "weights.bin"
    path.write_bytes(payload)
    return ModelFile("weights.bin", path)


@pytest.fixture
def memfds(monkeypatch) -> list[SealedMemfd]:
    """Every memfd the digest module creates, to check it was closed after a failure."""
    created: list[SealedMemfd] = []

    class Recorded(SealedMemfd):
        def __init__(self, name: str, size: int) -> None:
            super().__init__(name, size)
            created.append(self)

    monkeypatch.setattr(digest, "SealedMemfd", Recorded)
    return created


# The capture's own threads (other tests in the same run leave gRPC server threads).
CAPTURE_THREADS = ("tcme-capture-reader", "tcme-memfd-writer")


def _helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in CAPTURE_THREADS]


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_capture_holds_exactly_the_hashed_bytes(weights, payload, serialization):
    progress = Progress("test", SIZE)
    result = hash_model([weights], serialization, capture="weights.bin", progress=progress)
    captured = result.captured
    assert captured is not None
    try:
        assert captured.sealed
        assert fcntl.fcntl(captured.fd, fcntl.F_GET_SEALS) & ALL_SEALS == ALL_SEALS
        assert os.fstat(captured.fd).st_size == SIZE
        assert captured.path.read_bytes() == payload
        if serialization.method == "files":
            assert result.captured_digest == hashlib.sha256(payload).hexdigest()
        assert progress.done == SIZE
        assert _helper_threads() == []
    finally:
        captured.close()


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_file_shrinking_while_captured_fail(weights, memfds, monkeypatch, serialization):
    """The file is cut short just before the second chunk is read: refused, memfd closed."""
    real_preadv = os.preadv
    cut = threading.Event()

    def preadv_then_truncate(fd: int, buffers: list, offset: int) -> int:
        if offset >= CHUNK_BYTES and not cut.is_set():
            cut.set()
            os.truncate(weights.path, CHUNK_BYTES)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv_then_truncate)
    with pytest.raises(SignatureError) as caught:
        hash_model([weights], serialization, capture="weights.bin")
    assert caught.value.check == "model.file_changed[weights.bin]"
    if serialization.method == "files":
        assert (caught.value.expected, caught.value.actual) == (
            f"{SIZE} bytes",
            f"{CHUNK_BYTES} bytes",
        )
    assert [m.fd for m in memfds] == [-1]
    assert _helper_threads() == []


@pytest.mark.parametrize("serialization", SERIALIZATIONS)
def test_memfd_write_failure_closes_the_capture_fail(weights, memfds, monkeypatch, serialization):
    writes = []

    def full_after_one(self, data, offset: int) -> None:
        if writes:
            raise OSError(errno.ENOSPC, "memfd full")
        writes.append(offset)
        SealedMemfd.write_at(self, data, offset)

    monkeypatch.setattr(digest.SealedMemfd, "write_at", full_after_one)
    with pytest.raises(OSError) as caught:
        hash_model([weights], serialization, capture="weights.bin")
    assert caught.value.errno == errno.ENOSPC
    assert [m.fd for m in memfds] == [-1]
    assert _helper_threads() == []


def test_failure_on_the_hashing_thread_stops_the_helpers_fail(weights, memfds):
    """An error raised while hashing (here: by progress) ends the capture and its threads."""

    class Interrupted(Exception):
        pass

    calls = []

    class FailingProgress(Progress):
        def advance(self, nbytes: int) -> None:
            calls.append(nbytes)
            if len(calls) == 2:
                raise Interrupted

    progress = FailingProgress("test", SIZE)
    with pytest.raises(Interrupted):
        hash_model([weights], Serialization("files"), capture="weights.bin", progress=progress)
    assert len(calls) == 2  # nothing was hashed after the failure
    assert [m.fd for m in memfds] == [-1]
    assert _helper_threads() == []
