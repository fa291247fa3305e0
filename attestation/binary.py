"""The one bounds-checked reader of binary structures (TPM, SPDM, ...).

A truncated report, quote or device response must fail as ``check: truncated
(expected N bytes at offset K, got M bytes left)`` naming the field it was
reading, never as an ``IndexError`` or ``struct.error`` from deep inside a
parser. Every parser of a length-prefixed or fixed-layout byte string reads
through ``ByteReader`` so that rule has one owner.
"""

from __future__ import annotations

import struct
from typing import Any

from attestation.errors import ParseError, TcmeError

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class ByteReader:
    """A cursor over ``data``; each read names its field in the error when it is short.

    ``scope`` prefixes every field (``quote`` + ``magic`` -> ``quote.magic``);
    ``error`` is the class raised (``ParseError`` for evidence, a provider's own
    error for a device's answer).
    """

    def __init__(
        self, data: bytes, scope: str = "", *, error: type[TcmeError] = ParseError
    ) -> None:
        self.data = bytes(data)
        self.offset = 0
        self.scope = scope
        self.error = error

    def check(self, field: str) -> str:
        """The check name of ``field`` in this reader's scope."""
        return f"{self.scope}.{field}" if self.scope else field

    def take(self, size: int, field: str) -> bytes:
        """The next ``size`` bytes."""
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise self.error(
                self.check(field),
                "truncated",
                expected=f"{size} bytes at offset {self.offset}",
                actual=f"{len(self.data) - self.offset} bytes left",
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        """The next ``layout.size`` bytes, unpacked."""
        return layout.unpack(self.take(layout.size, field))

    def u16be(self, field: str) -> int:
        """A big-endian 16-bit unsigned integer."""
        return int(self.unpack(_U16, field)[0])

    def u32be(self, field: str) -> int:
        """A big-endian 32-bit unsigned integer."""
        return int(self.unpack(_U32, field)[0])

    def tpm2b(self, field: str, maximum: int | None = None) -> bytes:
        """A TPM2B: a big-endian 16-bit size, then that many bytes (at most ``maximum``)."""
        size = self.u16be(f"{field}.size")
        if maximum is not None and size > maximum:
            raise self.error(
                self.check(f"{field}.size"), "too large", expected=f"<= {maximum}", actual=size
            )
        return self.take(size, field)

    def rest(self) -> bytes:
        """Everything not read yet."""
        chunk = self.data[self.offset :]
        self.offset = len(self.data)
        return chunk

    def done(self) -> None:
        """Refuse bytes after the structure (a second reading could start there)."""
        if self.offset != len(self.data):
            raise self.error(
                self.check("trailing"),
                "trailing bytes after the structure",
                expected=self.offset,
                actual=len(self.data),
            )
