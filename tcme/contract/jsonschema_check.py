"""JSON Schema (draft 2020-12) for contract inputs and outputs, via the ``jsonschema`` package.

Two rules on top of the standard: a schema may only reference itself (``$ref``
starting with ``#``), so checking never fetches anything; and a violation is
reported by its location and keyword only, because jsonschema's own messages
quote the instance, and an input instance is a party's secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcme.wire.contract import ContractError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _validator_class() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


def parse_schema(value: Any, where: str) -> Mapping[str, Any]:
    """Check that ``value`` is a usable draft 2020-12 schema; raises ``ContractError``."""
    if not isinstance(value, dict):
        raise ContractError(where, "a JSON Schema must be an object", actual=type(value).__name__)
    declared = value.get("$schema")
    if declared is not None and declared != DRAFT_2020_12:
        raise ContractError(f"{where}.$schema", expected=DRAFT_2020_12, actual=declared)
    _local_refs_only(value, where)
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class().check_schema(value)
    except SchemaError as err:
        path = "/".join(str(p) for p in err.path) or "(root)"
        raise ContractError(where, f"not a valid JSON Schema at {path}: {err.message}") from err
    return value


def _local_refs_only(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("$ref", "$dynamicRef") and (
                not isinstance(item, str) or not item.startswith("#")
            ):
                raise ContractError(
                    where, "only local references (#...) are allowed", actual=str(item)[:80]
                )
            _local_refs_only(item, where)
    elif isinstance(value, list):
        for item in value:
            _local_refs_only(item, where)


def first_violation(schema: Mapping[str, Any], instance: Any) -> str | None:
    """Where ``instance`` first breaks ``schema`` ("at /a/0: type"), or None when it fits."""
    validator = _validator_class()(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    if not errors:
        return None
    error = errors[0]
    path = "/" + "/".join(str(p) for p in error.absolute_path)
    return f"at {path}: {error.validator} constraint"
