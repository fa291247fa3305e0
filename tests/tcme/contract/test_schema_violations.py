"""A value that breaks a contract's JSON Schema in several places is told every place."""

from __future__ import annotations

from tcme.contract import jsonschema_check

SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer", "maximum": 120}, "name": {"type": "string"}},
    "required": ["age", "name"],
}


def test_every_violation_is_listed_fail():
    text = jsonschema_check.violations(SCHEMA, {"age": 999, "name": 7})
    assert text == "at /age: maximum constraint; at /name: type constraint"


def test_a_fitting_value_has_none():
    assert jsonschema_check.violations(SCHEMA, {"age": 30, "name": "x"}) is None


def test_many_violations_are_summarised_by_a_count_fail():
    schema = {"type": "array", "items": {"type": "integer"}}
    text = jsonschema_check.violations(schema, ["x"] * 25)
    assert text is not None
    assert text.count("type constraint") == jsonschema_check.MAX_LISTED_VIOLATIONS
    assert text.endswith("; and 5 more")
