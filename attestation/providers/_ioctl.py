"""ioctl(2) plumbing shared by the device providers.

Providers take the ioctl function as a parameter: on a guest it is the real
system call; in tests a fake that behaves like the kernel driver stands in.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from typing import Any

IoctlFn = Callable[[int, int, Any], int]


def iowr(ioc_type: str, nr: int, size: int) -> int:
    """``_IOWR(type, nr, size)`` from asm-generic/ioctl.h (x86-64 and arm64 layout).

    dir (read|write = 3) << 30 | size << 16 | type << 8 | nr.
    """
    return (3 << 30) | (size << 16) | (ord(ioc_type) << 8) | nr


def linux_ioctl(fd: int, request: int, arg: Any) -> int:
    """The real ioctl(2); the kernel writes results back into ``arg`` in place."""
    return fcntl.ioctl(fd, request, arg, True)
