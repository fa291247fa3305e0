"""Input constraints of the ``general`` contract kind: parse the declaration, check values.

Types (docs/contracts.md, "Inputs")::

    integer  min, max                      (JSON integer)
    number   min, max (decimal strings), max_decimals?   (value: decimal string "12.5")
    string   max_len, pattern?, max_bytes? (pattern: RE2 full match, tcme.contract.regex)
    enum     values
    json     schema (JSON Schema 2020-12), max_bytes      (value: any JSON value)

Every input also carries ``may_flow_to`` (parties allowed to learn values
derived from it; the owner always may). Numbers travel as decimal strings
because canonical JSON has no floats, so every party and the enclave compare
the same exact decimal. A check failure raises ``InputError`` naming the input
and the constraint, never the value: an invalid input is still a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tcme.base.encoding import json_type
from tcme.contract import jsonschema_check, regex
from tcme.contract.errors import ContractError, InputError
from tcme.contract.fields import INPUT_NAME, as_list, as_name, enum_values, fields, int_in
from tcme.contract.model import InputSpec

DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,29})(\.[0-9]{1,18})?")
MAX_JSON_INPUT_BYTES = 16384
MAX_STRING_LEN = 4096
MAX_STRING_BYTES = 4 * MAX_STRING_LEN
MAX_DECIMALS = 18


def _where(spec: InputSpec) -> str:
    return f"input.{spec.party}.{spec.name}"


@dataclass(frozen=True)
class IntegerConstraint:
    """``min <= value <= max``, a JSON integer (not a boolean)."""

    minimum: int
    maximum: int

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` is an integer in range."""
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(
                _where(spec), "expected an integer", expected="integer", actual=json_type(value)
            )
        if not self.minimum <= value <= self.maximum:
            raise InputError(
                _where(spec),
                f"integer outside the contract range [{self.minimum}, {self.maximum}]",
            )

    def render(self, value: Any) -> str:
        """Decimal text."""
        return str(value)


@dataclass(frozen=True)
class NumberConstraint:
    """A decimal string (``-12.5``) within ``[min, max]``, at most ``max_decimals`` digits."""

    minimum: Decimal
    maximum: Decimal
    max_decimals: int

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` is a decimal string in range."""
        if not isinstance(value, str) or DECIMAL.fullmatch(value) is None:
            raise InputError(
                _where(spec),
                'expected a decimal number as a string (like "12.5")',
                expected="decimal string",
                actual=json_type(value),
            )
        decimals = len(value.partition(".")[2])
        if decimals > self.max_decimals:
            raise InputError(
                _where(spec), f"more than {self.max_decimals} digits after the decimal point"
            )
        if not self.minimum <= Decimal(value) <= self.maximum:
            raise InputError(
                _where(spec), f"number outside the contract range [{self.minimum}, {self.maximum}]"
            )

    def render(self, value: Any) -> str:
        """The decimal text as the party wrote it (already canonical by the pattern)."""
        return str(value)


@dataclass(frozen=True)
class StringConstraint:
    """At most ``max_len`` characters and ``max_bytes`` UTF-8 bytes; full-match ``pattern``."""

    max_len: int
    max_bytes: int | None
    pattern: regex.Pattern | None

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` is a string within every bound."""
        if not isinstance(value, str):
            raise InputError(
                _where(spec), "expected a string", expected="string", actual=json_type(value)
            )
        if len(value) > self.max_len:
            raise InputError(_where(spec), f"string longer than max_len {self.max_len}")
        if self.max_bytes is not None and len(value.encode("utf-8")) > self.max_bytes:
            raise InputError(_where(spec), f"string larger than max_bytes {self.max_bytes}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise InputError(_where(spec), "string does not match the contract's pattern")

    def render(self, value: Any) -> str:
        """The string itself."""
        return str(value)


@dataclass(frozen=True)
class EnumConstraint:
    """One of ``values``."""

    values: tuple[str, ...]

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` is one of the values."""
        if not isinstance(value, str) or value not in self.values:
            raise InputError(_where(spec), "not one of the contract's values")

    def render(self, value: Any) -> str:
        """The value itself."""
        return str(value)


@dataclass(frozen=True)
class JsonConstraint:
    """Any JSON value that satisfies ``schema`` and whose canonical form fits ``max_bytes``."""

    schema: Mapping[str, Any]
    max_bytes: int

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` satisfies the schema and the size bound."""
        try:
            size = len(_compact(value).encode("utf-8"))
        except (TypeError, ValueError) as err:
            raise InputError(_where(spec), "not a JSON value") from err
        if size > self.max_bytes:
            raise InputError(_where(spec), f"JSON value larger than max_bytes {self.max_bytes}")
        problem = jsonschema_check.violations(self.schema, value)
        if problem is not None:
            raise InputError(
                _where(spec), f"does not satisfy the contract's JSON Schema: {problem}"
            )

    def render(self, value: Any) -> str:
        """Compact JSON with sorted keys (the same text on every run)."""
        return _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


# --- declarations ------------------------------------------------------------------------

_COMMON = {"party", "name", "type"}


@dataclass(frozen=True)
class InputProfile:
    """The input types a contract kind allows, with the optional fields each may use.

    Every kind uses these same types and constraint objects; a kind only
    narrows which of them (and which optional fields) its contracts may declare.
    """

    optional: Mapping[str, frozenset[str]]
    flow_labels: bool  # ``may_flow_to`` allowed


def parse_input(
    item: Any, where: str, party_names: Sequence[str], profile: InputProfile
) -> InputSpec:
    """One ``inputs[]`` entry of a contract of ``profile``'s kind; raises ``ContractError``."""
    if not isinstance(item, dict):
        raise ContractError(where, "expected an object", actual=json_type(item))
    kind = item.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) and kind in profile.optional else None
    if parser is None or not isinstance(kind, str):
        raise ContractError(
            f"{where}.type",
            "unsupported input type",
            expected=" | ".join(profile.optional),
            actual=kind,
        )
    required, _all_optional, build = parser
    common = {"may_flow_to"} if profile.flow_labels else set()
    fields(item, where, _COMMON | required, common | profile.optional[kind])
    party = item["party"]
    if party not in party_names:
        raise ContractError(f"{where}.party", "names no party", actual=str(party)[:80])
    name = as_name(item["name"], f"{where}.name", INPUT_NAME)
    may_flow_to = parse_parties(item.get("may_flow_to", []), f"{where}.may_flow_to", party_names)
    constraint, extra = build(item, where)
    return InputSpec(
        party=party,
        name=name,
        type=kind,
        may_flow_to=may_flow_to,
        constraint=constraint,
        **extra,
    )


def parse_parties(value: Any, where: str, party_names: Sequence[str]) -> tuple[str, ...]:
    """A list of distinct party names (may be empty)."""
    items = as_list(value, where, 0, len(party_names))
    for item in items:
        if item not in party_names:
            raise ContractError(where, "names no party", actual=str(item)[:80])
    if len(set(items)) != len(items):
        raise ContractError(where, "duplicate party")
    return tuple(items)


def _integer(item: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
    low = int_in(item["min"], f"{where}.min", -(2**53 - 1), 2**53 - 1)
    high = int_in(item["max"], f"{where}.max", -(2**53 - 1), 2**53 - 1)
    if low > high:
        raise ContractError(f"{where}.max", "max is below min", expected=f">= {low}", actual=high)
    return IntegerConstraint(low, high), {"minimum": low, "maximum": high}


def _decimal(value: Any, where: str) -> Decimal:
    if not isinstance(value, str) or DECIMAL.fullmatch(value) is None:
        raise ContractError(
            where, "expected a decimal number as a string", expected='"-12.5"', actual=value
        )
    try:
        return Decimal(value)
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only decimals
        raise ContractError(where, "not a decimal number") from err


def _number(item: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
    low = _decimal(item["min"], f"{where}.min")
    high = _decimal(item["max"], f"{where}.max")
    if low > high:
        raise ContractError(f"{where}.max", "max is below min", expected=f">= {low}", actual=high)
    decimals = int_in(item.get("max_decimals", 6), f"{where}.max_decimals", 0, MAX_DECIMALS)
    return NumberConstraint(low, high, decimals), {}


def _string(item: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
    max_len = int_in(item["max_len"], f"{where}.max_len", 1, MAX_STRING_LEN)
    max_bytes = item.get("max_bytes")
    if max_bytes is not None:
        max_bytes = int_in(max_bytes, f"{where}.max_bytes", 1, MAX_STRING_BYTES)
    pattern = item.get("pattern")
    compiled = None
    if pattern is not None:
        compiled = regex.compile_pattern(pattern, f"{where}.pattern")
    return StringConstraint(max_len, max_bytes, compiled), {"max_len": max_len, "pattern": pattern}


def _enum(item: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
    values = enum_values(item["values"], f"{where}.values", minimum=1)
    return EnumConstraint(values), {"values": values}


def _json(item: dict[str, Any], where: str) -> tuple[Any, dict[str, Any]]:
    schema = jsonschema_check.parse_schema(item["schema"], f"{where}.schema")
    max_bytes = int_in(item["max_bytes"], f"{where}.max_bytes", 1, MAX_JSON_INPUT_BYTES)
    return JsonConstraint(schema, max_bytes), {}


_PARSERS: dict[str, tuple[set[str], set[str], Any]] = {
    "integer": ({"min", "max"}, set(), _integer),
    "number": ({"min", "max"}, {"max_decimals"}, _number),
    "string": ({"max_len"}, {"pattern", "max_bytes"}, _string),
    "enum": ({"values"}, set(), _enum),
    "json": ({"schema", "max_bytes"}, set(), _json),
}
INPUT_TYPES = tuple(_PARSERS)

GENERAL_INPUTS = InputProfile(
    optional={kind: frozenset(optional) for kind, (_req, optional, _build) in _PARSERS.items()},
    flow_labels=True,
)
# Kind "enum-decision" predates the other types and fields; its canonical form stays.
ENUM_DECISION_INPUTS = InputProfile(
    optional={"integer": frozenset(), "string": frozenset({"pattern"}), "enum": frozenset()},
    flow_labels=False,
)
