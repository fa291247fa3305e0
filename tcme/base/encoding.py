"""Byte-exact encodings shared by every tcme wire structure.

Two primitives: ``lp`` (a 4-byte big-endian length prefix, so concatenated
fields can never be re-split differently) and canonical JSON (sorted keys, no
whitespace, UTF-8, no floats). Parsers accept only bytes that re-encode to
themselves, so a signature or digest is always over the one encoding everyone
computes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from attestation.errors import BindingError, ParseError, UsageError
from attestation.text import no_duplicate_keys, parse_hex

# JSON integers outside this range lose precision in many JSON parsers.
MAX_SAFE_INT = 2**53 - 1
# No wire structure needs to be larger; parsing bigger input is refused up front.
MAX_JSON_BYTES = 256 * 1024
MAX_DEPTH = 8


def lp(field: bytes) -> bytes:
    """``len(field)`` as 4 bytes big-endian, then ``field``."""
    if len(field) > 0xFFFFFFFF:
        raise ValueError("field too long for a 4-byte length prefix")
    return len(field).to_bytes(4, "big") + field


def lp_join(*fields: bytes | str) -> bytes:
    """Concatenate ``lp`` of every field (str is UTF-8 encoded)."""
    return b"".join(lp(f.encode("utf-8") if isinstance(f, str) else f) for f in fields)


def split_lp(data: bytes, count: int, *, what: str) -> list[bytes]:
    """Inverse of ``lp_join`` for exactly ``count`` fields and no trailing bytes."""
    out: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(data):
            raise ParseError(f"{what}.framing", f"truncated before field {index}")
        size = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if offset + size > len(data):
            raise ParseError(
                f"{what}.framing",
                f"field {index} runs past the end",
                expected=f"<= {len(data) - offset} bytes",
                actual=size,
            )
        out.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise ParseError(f"{what}.framing", "trailing bytes", expected=0, actual=len(data) - offset)
    return out


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (the ``H`` of docs/protocol.md)."""
    return hashlib.sha256(data).digest()


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, integers only (no floats)."""
    _check_json_value(obj, "value", 0)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages that non-Python clients read
    (``string``, not ``str``); never the value itself, which may be a party's secret."""
    if value is None:
        return "null"
    for kind, name in (
        (bool, "boolean"),  # before int: a bool is an int in Python
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (bytes, "bytes"),
        (list, "array"),
        (tuple, "array"),
        (Mapping, "object"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def check_nesting(text: str, what: str, limit: int = MAX_DEPTH + 1) -> None:
    """Refuse JSON text whose arrays/objects nest deeper than ``limit``, before parsing it.

    ``json.loads`` recurses once per level and raises ``RecursionError`` (not a
    parse error) on deep input; this scan is iterative and linear, and visits
    only brackets, quotes and backslashes. ``MAX_DEPTH + 1`` levels of brackets
    is exactly what ``canonical_json`` accepts.
    """
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(text):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise ParseError(
                    f"{what}.depth",
                    "JSON nested too deeply",
                    expected=f"<= {limit} levels of arrays/objects",
                    actual=f"more than {limit}",
                )
        elif char in "]}":
            depth -= 1


_JSON_SPECIAL = re.compile(r'[\[\]{}"\\]')


def load_json_text(text: str, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Strict JSON from untrusted text: bounded size and depth, no duplicate keys, no floats.

    Raises ``ParseError`` (``<what>.size``, ``<what>.depth`` or ``<what>.json``).
    """
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise ParseError(f"{what}.size", expected=f"<= {max_bytes} bytes", actual=size)
    check_nesting(text, what)
    if not text.strip():
        raise ParseError(
            f"{what}.json", "empty: no JSON document", expected="a JSON document", actual="empty"
        )
    try:
        return json.loads(
            text,
            object_pairs_hook=no_duplicate_keys(f"{what}.json"),
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except ValueError as err:
        raise ParseError(f"{what}.json", f"not valid JSON: {err}") from err


def read_text_file(path: Path, what: str, *, max_bytes: int) -> str:
    """A UTF-8 text file of at most ``max_bytes`` (larger files are not read in full).

    Raises ``UsageError`` (``<what>.read``) or ``ParseError`` (``.size``, ``.utf8``).
    """
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise UsageError(f"{what}.read", f"cannot read {path}: {err.strerror}") from err
    if len(data) > max_bytes:
        raise ParseError(f"{what}.size", f"{path} is too large", expected=f"<= {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(f"{what}.utf8", f"{path} is not UTF-8") from err
    return text


def load_json_file(path: Path, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Strict, bounded JSON from a file (``read_text_file``, then ``load_json_text``)."""
    text = read_text_file(path, what, max_bytes=max_bytes)
    try:
        return load_json_text(text, what, max_bytes=max_bytes)
    except ParseError as err:
        raise ParseError(
            err.check, f"{path}: {err.detail}", expected=err.expected, actual=err.actual
        ) from err


def parse_canonical_json(data: bytes, what: str) -> Any:
    """Parse ``data`` and require that it is exactly the canonical encoding of its value.

    Raises ``ParseError`` (check ``<what>.size``, ``.depth``, ``.json`` or ``.canonical``).
    """
    if len(data) > MAX_JSON_BYTES:
        raise ParseError(f"{what}.size", expected=f"<= {MAX_JSON_BYTES} bytes", actual=len(data))
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(f"{what}.json", f"not valid canonical JSON: {err}") from err
    value = load_json_text(text, what)
    try:
        again = canonical_json(value)
    except ValueError as err:
        raise ParseError(f"{what}.json", str(err)) from err
    if again != bytes(data):
        raise ParseError(
            f"{what}.canonical",
            "bytes are not in canonical form (sorted keys, no whitespace, UTF-8)",
            expected=f"{len(again)} canonical bytes",
            actual=f"{len(data)} bytes",
        )
    return value


def _no_float(token: str) -> Any:
    raise ValueError(f"non-integer number {token!r} (floats are not allowed)")


def check_depth(value: Any, depth: int = 0) -> None:
    """Raise ``ValueError`` when lists/dicts in ``value`` nest deeper than ``canonical_json``
    accepts (stops descending at the limit, so the check itself stays shallow)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            check_depth(item, depth + 1)


def _check_json_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise ValueError(f"{path}: integer outside +-(2^53-1)")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings")
            _check_json_value(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth + 1)
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def b64(data: bytes) -> str:
    """Standard padded base64 (how public keys appear in JSON)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, check: str, *, size: int | None = None) -> bytes:
    """Decode canonical standard base64; ``size`` pins the decoded length."""
    if not isinstance(text, str):
        raise ParseError(check, "expected a base64 string", actual=type(text).__name__)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ParseError(check, f"bad base64: {err}") from err
    if b64(raw) != text:
        raise ParseError(check, "base64 is not in canonical (padded, standard) form")
    if size is not None and len(raw) != size:
        raise ParseError(
            check, "wrong length", expected=f"{size} bytes", actual=f"{len(raw)} bytes"
        )
    return raw


def unhex(text: Any, check: str, *, size: int | None = None) -> bytes:
    """Decode lowercase hex (the one canonical spelling); ``size`` pins the decoded length."""
    return parse_hex(text, check, size=size, error=ParseError, lowercase_only=True)


def require_keys(
    obj: Any, check: str, required: set[str], optional: AbstractSet[str] = frozenset()
) -> dict:
    """``obj`` must be a JSON object with all ``required`` keys and nothing unknown."""
    if not isinstance(obj, dict):
        raise ParseError(check, "expected a JSON object", actual=type(obj).__name__)
    missing = sorted(required - obj.keys())
    if missing:
        raise ParseError(check, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise ParseError(check, f"unknown field(s) {', '.join(unknown)}")
    return obj


def require_equal(check: str, expected: Any, actual: Any) -> None:
    """A signed document must restate what the verifier already knows, exactly."""
    if expected != actual:
        raise BindingError(check, expected=expected, actual=actual)
