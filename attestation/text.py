"""Values written as text: sized hex, SHA-256 digests, RFC 3339 times, pasted blobs.

Every command-line option, policy key and wire field that carries one of these
goes through here, so one form is printed everywhere and every accepted form is
accepted everywhere:

- a SHA-256 digest is printed ``sha256:<64 hex digits>`` and read with or
  without the ``sha256:`` prefix (upper- or lowercase hex);
- a time is RFC 3339; a time without a zone is taken as UTC;
- a JSON object may not name a key twice (two readers could disagree on its value).

The error class is the caller's: ``UsageError`` for what a person typed (the
default), ``ParseError`` for bytes that arrived from elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from attestation.errors import ParseError, TcmeError, UsageError

SHA256_PREFIX = "sha256:"
SHA256_SIZE = 32
_HEX_TEXT = re.compile(r"\A(?:[0-9a-fA-F]{2})*\Z")
_HEX_BYTES = re.compile(rb"\A(?:[0-9a-fA-F]{2})+\Z")
_B64_BYTES = re.compile(rb"\A[A-Za-z0-9+/_-]+={0,2}\Z")


def parse_hex(
    value: Any,
    check: str,
    *,
    size: int | None = None,
    error: type[TcmeError] = UsageError,
    lowercase_only: bool = False,
    exact: bool = False,
) -> bytes:
    """Hex text as bytes; ``size`` pins the decoded length (in bytes).

    Surrounding whitespace (a pasted value) is dropped unless ``exact`` is set,
    for fields of a signed or canonical document, where only one spelling of a
    value may verify; ``lowercase_only`` further refuses uppercase digits. Inner
    whitespace is always refused (``bytes.fromhex`` would skip it). The value
    itself is quoted only when short (it may be a long blob that a caller
    should not have echoed back).
    """
    if not isinstance(value, str):
        raise error(check, "expected a hex string", actual=type(value).__name__)
    text = value if exact or lowercase_only else value.strip()
    if lowercase_only and text != text.lower():
        raise error(check, "expected lowercase hex", actual=_quote(value))
    if not _HEX_TEXT.match(text):
        expected = f"{2 * size} hex digits" if size is not None else "hex digits"
        raise error(check, "not hex", expected=expected, actual=_quote(value))
    raw = bytes.fromhex(text)
    if size is not None and len(raw) != size:
        raise error(check, "wrong length", expected=f"{size} bytes", actual=f"{len(raw)} bytes")
    return raw


def decode_text_blob(data: bytes) -> bytes | None:
    """Binary evidence pasted as hex or base64 (standard or URL-safe) text, or None.

    Whitespace and line breaks are never significant in such text (``xxd -p`` and
    ``base64`` both wrap). None means the bytes are neither form, so the caller
    can go on treating them as raw binary and name its own check.
    """
    text = b"".join(bytes(data).split())
    if not text:
        return None
    if _HEX_BYTES.match(text):
        return bytes.fromhex(text.decode("ascii"))
    if _B64_BYTES.match(text):
        try:
            standard = text.replace(b"-", b"+").replace(b"_", b"/")
            return base64.b64decode(standard + b"=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def parse_sha256(value: Any, check: str, *, error: type[TcmeError] = UsageError) -> bytes:
    """A SHA-256 digest written ``sha256:<hex>`` or as bare hex (both are accepted)."""
    if isinstance(value, str) and value.strip().lower().startswith(SHA256_PREFIX):
        value = value.strip()[len(SHA256_PREFIX) :]
    return parse_hex(value, check, size=SHA256_SIZE, error=error)


def format_sha256(digest: bytes | str) -> str:
    """The one printed form of a SHA-256 digest: ``sha256:<lowercase hex>``.

    A ``str`` is taken as hex, with or without the prefix, and normalised.
    """
    if isinstance(digest, str):
        digest = parse_sha256(digest, "sha256")
    return SHA256_PREFIX + digest.hex()


def parse_time(text: str, check: str, *, error: type[TcmeError] = UsageError) -> datetime:
    """An RFC 3339 time (``2025-06-01T00:00:00Z``); a time without a zone is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise error(
            check,
            "not an RFC 3339 time",
            expected="e.g. 2025-06-01T00:00:00Z",
            actual=_quote(text),
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def no_duplicate_keys(
    check: str, *, error: type[TcmeError] = ParseError
) -> Callable[[Sequence[tuple[str, Any]]], dict[str, Any]]:
    """A ``json.loads`` ``object_pairs_hook`` that refuses a key given twice."""

    def hook(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise error(
                    check,
                    "a key appears twice (two readers could disagree on its value)",
                    actual=_quote(key),
                )
            out[key] = value
        return out

    return hook


def _quote(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
