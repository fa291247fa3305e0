"""Small, strict checks for one field of a contract object, and the contract's name rules.

Every failure is a ``ContractError`` that names the field (``where``) and,
where it helps, what was expected and what was found.
"""

from __future__ import annotations

import re
from typing import Any

from tcme.base.encoding import json_type
from tcme.contract.errors import ContractError

PARTY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Enum values go into a GBNF grammar literal; this alphabet needs no escaping.
ENUM_VALUE = re.compile(r"[A-Za-z0-9 _.,:;!?'()/+-]{1,64}")
MAX_ENUM_VALUES = 64


def fields(obj: Any, where: str, required: set[str], optional: set[str] | None = None) -> None:
    """``obj`` is an object with every ``required`` key and no key beyond ``optional``."""
    if not isinstance(obj, dict):
        raise ContractError(where, "expected an object", actual=json_type(obj))
    missing = sorted(required - obj.keys())
    if missing:
        raise ContractError(where, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(obj.keys() - required - (optional or set()))
    if unknown:
        raise ContractError(where, f"unsupported field(s) {', '.join(unknown)}")


def as_list(value: Any, where: str, low: int, high: int) -> list[Any]:
    """``value`` as a list of ``low`` to ``high`` entries."""
    if not isinstance(value, list):
        raise ContractError(where, "expected a list", actual=json_type(value))
    if not low <= len(value) <= high:
        raise ContractError(
            where, "wrong number of entries", expected=f"{low}..{high}", actual=len(value)
        )
    return value


def as_string(value: Any, where: str) -> str:
    """``value`` as a string (any length)."""
    if not isinstance(value, str):
        raise ContractError(where, "expected a string", actual=json_type(value))
    return value


def as_text(value: Any, where: str, limit: int) -> str:
    """``value`` as a non-empty string of at most ``limit`` characters."""
    text = as_string(value, where)
    if not text or len(text) > limit:
        raise ContractError(
            where, "length out of range", expected=f"1..{limit} characters", actual=len(text)
        )
    return text


def as_name(value: Any, where: str, pattern: re.Pattern[str]) -> str:
    """``value`` as a string that fully matches ``pattern``."""
    name = as_string(value, where)
    if pattern.fullmatch(name) is None:
        raise ContractError(where, "bad name", expected=pattern.pattern, actual=name[:80])
    return name


def int_in(value: Any, where: str, low: int, high: int) -> int:
    """``value`` as an integer (not a bool) in ``low..high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ContractError(where, "expected an integer", actual=json_type(value))
    if not low <= value <= high:
        raise ContractError(where, "out of range", expected=f"{low}..{high}", actual=value)
    return value


def enum_values(value: Any, where: str, *, minimum: int) -> tuple[str, ...]:
    """``value`` as distinct enum values (``ENUM_VALUE``), at least ``minimum`` of them."""
    items = as_list(value, where, minimum, MAX_ENUM_VALUES)
    for item in items:
        if not isinstance(item, str) or ENUM_VALUE.fullmatch(item) is None:
            raise ContractError(
                where, "bad enum value", expected=ENUM_VALUE.pattern, actual=repr(item)[:80]
            )
    if len(set(items)) != len(items):
        raise ContractError(where, "duplicate enum value")
    return tuple(items)
