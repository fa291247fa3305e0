"""Strict readers for policy TOML values, shared by every policy table's parser.

The rules every table follows (docs/security.md, "Policy reference"):

* an unknown table or key is an error that names it and the nearest known name
  (``difflib``), so a typo can never silently drop a check;
* a reference value is either pinned to a non-empty list, or skipped with the
  explicit value ``{ skip = true }``; an empty list is an error, not a wildcard
  (Oak's rule). ``Skip`` is that value, kept in the parsed policy so summaries
  can show it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from attestation.errors import UsageError
from attestation.text import parse_hex

T = TypeVar("T")


@dataclass(frozen=True)
class Skip:
    """``{ skip = true }``: the policy deliberately does not check this reference value."""

    def __str__(self) -> str:
        return "{ skip = true }"


SKIP = Skip()


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (for "did you mean ...?"), or None."""
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:  # `[SNP]` for `[snp]`
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def unknown_name(prefix: str, name: str, known: Iterable[str], *, what: str = "key") -> UsageError:
    """The error for an unknown ``name`` under ``prefix`` (``policy``, ``policy.snp``, ...).

    The check is ``prefix.name``; the message names the nearest known name.
    """
    known = sorted(known)
    hint = nearest(name, known)
    where = "the policy" if prefix == "policy" else f"[{prefix.removeprefix('policy.')}]"
    detail = f"unknown {what} {name!r} in {where} (a typo must not silently drop a check)"
    if hint is not None:
        detail += f"; did you mean {hint!r}?"
    return UsageError(
        f"{prefix}.{name}",
        detail,
        expected=hint if hint is not None else "one of " + ", ".join(known),
        actual=name,
    )


def check_keys(table: Mapping[str, Any], known: Iterable[str], prefix: str) -> None:
    """Raise ``unknown_name`` for the first key of ``table`` (sorted) not in ``known``."""
    known = set(known)
    for key in sorted(table):
        if key not in known:
            raise unknown_name(prefix, key, known)


def expect_table(value: Any, check: str) -> Mapping[str, Any]:
    """``value`` as a table; ``UsageError`` otherwise."""
    if not isinstance(value, Mapping):
        raise UsageError(check, "must be a table", actual=type(value).__name__)
    return value


def is_skip(value: Any) -> bool:
    """True when ``value`` is exactly ``{ skip = true }``."""
    return isinstance(value, Mapping) and dict(value) == {"skip": True}


def pinned(
    value: Any, check: str, convert: Callable[[Any, str], T], *, how: str = ""
) -> tuple[T, ...] | Skip:
    """A non-empty list of reference values, or ``SKIP`` for ``{ skip = true }``.

    ``convert(item, check)`` types each item. An empty list, ``{ skip = false }`` or
    any other table is refused. ``how`` says where the values come from (for the
    error message).
    """
    if is_skip(value):
        return SKIP
    if isinstance(value, Mapping):
        raise UsageError(
            check,
            "the only table accepted here is { skip = true }",
            expected="a non-empty list, or { skip = true }",
            actual=repr(dict(value)),
        )
    if not isinstance(value, list):
        raise UsageError(
            check,
            "must be a list of reference values",
            expected="a non-empty list, or { skip = true }",
            actual=type(value).__name__,
        )
    if not value:
        raise UsageError(
            check,
            "an empty list is an error, not a wildcard: pin at least one value"
            + (f" ({how})" if how else "")
            + ", or write { skip = true } to skip this check explicitly",
            expected="a non-empty list, or { skip = true }",
            actual="[]",
        )
    return tuple(convert(item, f"{check}[{i}]") for i, item in enumerate(value))


def to_bool(value: Any, check: str) -> bool:
    """``value`` if it is a TOML boolean."""
    if not isinstance(value, bool):
        raise UsageError(check, "must be true or false", actual=repr(value))
    return value


def to_int(value: Any, check: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    """``value`` if it is an integer in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(check, "must be an integer", expected=f"{lo}..{hi}", actual=repr(value))
    return value


def to_list(value: Any, check: str) -> list[Any]:
    """``value`` if it is a TOML array."""
    if not isinstance(value, list):
        raise UsageError(check, "must be a list", actual=type(value).__name__)
    return value


def to_hex_bytes(value: Any, check: str, size: int) -> bytes:
    """``size`` bytes from a hex string (``attestation.text.parse_hex``)."""
    return parse_hex(value, check, size=size)


def hex_converter(size: int) -> Callable[[Any, str], bytes]:
    """A ``convert`` for ``pinned``: one ``size``-byte hex value."""
    return lambda value, check: to_hex_bytes(value, check, size)
