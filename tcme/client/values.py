"""A party's input values given as text (``tcme session submit --value``), typed by the contract.

The values are never echoed in errors: they are the party's secret. Every
problem with them is a ``UsageError``, found before anything is sealed or sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attestation.errors import TcmeError, UsageError

if TYPE_CHECKING:
    from tcme.wire import Contract


def parse_values(contract: Contract, party: str, given: Sequence[str]) -> dict[str, Any]:
    """``--value`` arguments as the contract types them (``V``, or ``NAME=V`` per input).

    Each value is also checked against its input's constraint (range, length,
    pattern, schema), so a value the enclave would refuse is refused here.
    """
    specs = {spec.name: spec for spec in contract.inputs_of(party)}
    if not specs:
        raise UsageError("input.party", f"the contract names no input for {party!r}")
    pairs: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            if len(specs) != 1:
                raise UsageError(
                    "input.value",
                    "this party has several inputs: give each as NAME=VALUE",
                    expected=", ".join(sorted(specs)),
                )
            name, value = next(iter(specs)), item
        if name not in specs:
            raise UsageError(
                "input.name",
                "not an input of this party",
                expected=", ".join(sorted(specs)),
                actual=name,
            )
        if name in pairs:
            raise UsageError("input.name", "given twice", actual=name)
        pairs[name] = value
    missing = sorted(set(specs) - set(pairs))
    if missing:
        raise UsageError("input.missing", "no value given", expected=", ".join(missing))
    values = {name: _typed(name, specs[name].type, text) for name, text in pairs.items()}
    for name, value in values.items():
        try:
            specs[name].check(value)
        except TcmeError as err:
            # The constraint's own message never quotes the value.
            raise UsageError(err.check, err.detail) from None
    return check_values(contract, party, values)


def check_values(contract: Contract, party: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed ``values`` of ``party`` checked as the enclave will check them (types, ranges,
    schemas, and the whole signed input against its plaintext limit); a value it would
    refuse is bad input here, a ``UsageError`` (exit 2), before anything is sealed or sent."""
    from tcme.wire.envelope import check_input

    try:
        return check_input(contract, party, values)
    except TcmeError as err:
        raise UsageError(err.check, err.detail, expected=err.expected, actual=err.actual) from None


def _typed(name: str, kind: str, text: str) -> Any:
    if kind == "integer":
        try:
            return int(text, 10)
        except ValueError:
            raise UsageError("input.type", f"input {name!r} must be a decimal integer") from None
    if kind == "json":
        # A JSON input arrives as JSON text on the command line; the contract's
        # schema then checks the parsed value.
        try:
            return json.loads(text)
        except ValueError:
            raise UsageError("input.type", f"input {name!r} must be JSON text") from None
    return text
