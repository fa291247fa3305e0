"""JSON Schema (draft 2020-12) for contract inputs and outputs, via the ``jsonschema`` package.

Rules on top of the standard:

- a schema may only reference itself (``$ref`` starting with ``#``), so
  checking never fetches anything;
- every regular expression in it (``pattern``, the keys of
  ``patternProperties``) runs on RE2 (``tcme.contract.regex``), never on
  Python's backtracking ``re``: the validator class here replaces the three
  ``jsonschema`` keywords that match patterns (``pattern``,
  ``patternProperties``, ``additionalProperties``), and a pattern RE2 refuses
  is refused when the contract is parsed. ``unevaluatedProperties`` next to
  ``patternProperties`` is refused (``jsonschema`` evaluates that pair with
  ``re``), and so is a ``$schema`` below the root (it would switch the
  validator class);
- a violation is reported by its location and keyword only, because
  jsonschema's own messages quote the instance, and an input instance is a
  party's secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from tcme.base.encoding import json_type
from tcme.contract import regex
from tcme.contract.errors import ContractError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# Keywords whose value is data, not a schema (never walked for patterns).
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose value maps names to subschemas (the names are not keywords).
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "dependentSchemas"})


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _matcher(pattern).search(instance):
        yield ValidationError("does not match the schema's pattern")


def _re2_pattern_properties(
    validator: Any, pattern_properties: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        matcher = _matcher(pattern)
        for key, value in instance.items():
            if matcher.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _re2_additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    patterns = [_matcher(p) for p in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in named and not any(matcher.search(key) for matcher in patterns)
    ]
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif not additional and extras:
        yield ValidationError("additional properties are not allowed")


def _matcher(pattern: str) -> regex.Pattern:
    from jsonschema.exceptions import ValidationError

    try:
        return regex.compiled(pattern)
    except regex.PatternError:
        # parse_schema refuses such a schema; fail closed if one got here anyway.
        raise ValidationError("the schema's pattern is not an RE2 pattern") from None


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        {
            "pattern": _re2_pattern,
            "patternProperties": _re2_pattern_properties,
            "additionalProperties": _re2_additional_properties,
        },
    )


@cache
def format_checker() -> Any:
    """``jsonschema``'s format checker with ``regex`` meaning "a pattern RE2 accepts"."""
    from jsonschema import FormatChecker

    checker = FormatChecker()
    checker.checks("regex")(regex.is_re2_pattern)
    return checker


def parse_schema(value: Any, where: str) -> Mapping[str, Any]:
    """Check that ``value`` is a usable draft 2020-12 schema; raises ``ContractError``."""
    if not isinstance(value, dict):
        raise ContractError(where, "a JSON Schema must be an object", actual=json_type(value))
    declared = value.get("$schema")
    if declared is not None and declared != DRAFT_2020_12:
        raise ContractError(f"{where}.$schema", expected=DRAFT_2020_12, actual=declared)
    _local_refs_only(value, where)
    # Patterns first, so a pattern RE2 refuses is named with RE2's reason.
    found = _check_patterns(value, where, root=True)
    if "patternProperties" in found and "unevaluatedProperties" in found:
        raise ContractError(
            where,
            "unevaluatedProperties cannot be combined with patternProperties "
            "(the checker would run those patterns outside RE2)",
        )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value, format_checker=format_checker())
    except SchemaError as err:
        path = "/".join(str(p) for p in err.path) or "(root)"
        raise ContractError(where, f"not a valid JSON Schema at {path}: {err.message}") from err
    return value


def _check_patterns(node: Any, where: str, *, root: bool = False) -> set[str]:
    """Compile every pattern with RE2; return the pattern-related keywords seen."""
    seen: set[str] = set()
    if isinstance(node, list):
        for index, item in enumerate(node):
            seen |= _check_patterns(item, f"{where}[{index}]")
        return seen
    if not isinstance(node, dict):
        return seen
    for key, value in node.items():
        here = f"{where}.{key}"
        if key in _DATA_KEYWORDS:
            continue
        if key == "$schema" and not root:
            raise ContractError(here, "$schema is allowed only at the schema's root")
        if key == "unevaluatedProperties":
            seen.add(key)
        if key == "pattern" and isinstance(value, str):
            regex.compile_pattern(value, here)
        elif key == "patternProperties" and isinstance(value, dict):
            seen.add(key)
            for pattern, subschema in value.items():
                regex.compile_pattern(pattern, f"{here}[{pattern[:40]!r}]")
                seen |= _check_patterns(subschema, f"{here}.{pattern[:40]}")
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, subschema in value.items():
                seen |= _check_patterns(subschema, f"{here}.{name}")
        else:
            seen |= _check_patterns(value, here)
    return seen


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


def _checker(schema: Mapping[str, Any]) -> Any:
    # Without the root "$schema": jsonschema picks the validator class of a "$schema"
    # it meets while following a "$ref" to the root, which would leave RE2 behind.
    body = {key: value for key, value in schema.items() if key != "$schema"}
    return _validator_class()(body)


# Enough to show a party everything wrong with a value of ordinary size; a value
# that breaks more is summarised by a count, so the message stays bounded.
MAX_LISTED_VIOLATIONS = 20


def violations(schema: Mapping[str, Any], instance: Any) -> str | None:
    """Every place ``instance`` breaks ``schema`` ("at /a/0: type constraint; ..."), or None."""
    validator = _checker(schema)
    errors = sorted(
        validator.iter_errors(instance),
        key=lambda e: (list(map(str, e.absolute_path)), str(e.validator)),
    )
    if not errors:
        return None
    listed = [
        f"at /{'/'.join(str(p) for p in error.absolute_path)}: {error.validator} constraint"
        for error in errors[:MAX_LISTED_VIOLATIONS]
    ]
    hidden = len(errors) - len(listed)
    return "; ".join(listed) + (f"; and {hidden} more" if hidden else "")
