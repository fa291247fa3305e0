"""Sealed memfds: RAM-backed anonymous files that can be frozen read-only.

Why: inside a confidential VM the disk (and so the page cache behind an
``mmap`` of a disk file) belongs to the untrusted host, and any file on disk
can be rewritten or renamed over between a check and a use. Bytes copied into
a memfd live only in (encrypted) guest RAM; once sealed with ``F_SEAL_WRITE``
``F_SEAL_SHRINK`` ``F_SEAL_GROW`` and ``F_SEAL_SEAL`` the kernel refuses every
write, resize and further seal change, for every holder of the descriptor,
including us. ``/proc/self/fd/N`` then names exactly those bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from attestation.errors import TcmeError

ALL_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class SealedMemfd:
    """An anonymous memfd of a fixed size, written once and then sealed.

    The descriptor is close-on-exec so no child process inherits it. Until
    :meth:`seal` only this process can write it (through this descriptor);
    after :meth:`seal` nobody can.
    """

    def __init__(self, name: str, size: int) -> None:
        self._fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self._size = size
        self._sealed = False
        try:
            os.ftruncate(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def fd(self) -> int:
        """The descriptor; -1 after :meth:`close`."""
        return self._fd

    @property
    def size(self) -> int:
        """Size in bytes, fixed at creation."""
        return self._size

    @property
    def sealed(self) -> bool:
        """True once :meth:`seal` succeeded."""
        return self._sealed

    @property
    def path(self) -> Path:
        """A path that opens these exact bytes in this process (``/proc/self/fd/N``)."""
        if self._fd < 0:
            raise ValueError("memfd is closed")
        return Path(f"/proc/self/fd/{self._fd}")

    def reserve(self, offset: int, length: int) -> None:
        """Allocate the pages of a range up front (much cheaper than page-by-page writes)."""
        if length > 0:
            os.posix_fallocate(self._fd, offset, length)

    def write_at(self, data: memoryview | bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (before sealing)."""
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def seal(self) -> None:
        """Freeze the contents: no write, resize or seal change is possible afterwards."""
        fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS, ALL_SEALS)
        seals = fcntl.fcntl(self._fd, fcntl.F_GET_SEALS)
        if seals & ALL_SEALS != ALL_SEALS:
            raise TcmeError(
                "model.memfd.seal",
                "the kernel did not apply every seal",
                expected=hex(ALL_SEALS),
                actual=hex(seals),
            )
        self._sealed = True

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SealedMemfd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def sealed_bytes_path(data: bytes, name: str = "tcme-config") -> Iterator[Path]:
    """Yield a path to a sealed in-memory copy of ``data``.

    For libraries that insist on reading a *path* (model-signing reads keys and
    trust configs by path): the bytes we checked are the bytes they read, and
    nothing on disk is involved.
    """
    memfd = SealedMemfd(name, len(data))
    try:
        memfd.write_at(data, 0)
        memfd.seal()
        yield memfd.path
    finally:
        memfd.close()
