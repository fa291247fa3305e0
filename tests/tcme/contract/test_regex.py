"""Contract patterns run on RE2: catastrophic patterns finish, what RE2 cannot do is refused.

The attack: whoever proposes a session writes the contract, so a pattern such as
``(a|aa)+`` against ninety ``a`` and a ``b`` would hold Python's backtracking
``re`` (and the GIL) for hours. Each attack runs in a child process with a
generous timeout: a regression hangs that child and fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tcme.contract import jsonschema_check, regex
from tcme.contract.errors import ContractError
from tcme.wire import canonical_contract, parse_contract

EVIL = "(a|aa)+"
ATTACK = "a" * 90 + "b"
ROOT = Path(__file__).resolve().parents[3]
CHILD_TIMEOUT = 120  # seconds; the honest run takes well under one


def _in_child(code: str) -> dict:
    """Run ``code`` (which prints one JSON line) in a fresh interpreter; fail if it hangs."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the pattern check did not finish in {CHILD_TIMEOUT} s (backtracking?)")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _string_input_contract(contract_dict, pattern: str) -> dict:
    contract_dict["inputs"][0]["pattern"] = pattern
    contract_dict["inputs"][0]["max_len"] = 100
    contract_dict["inputs"][0]["max_bytes"] = 100
    return contract_dict


def test_catastrophic_input_pattern_answers_a_party_value_promptly_attack(contract_dict):
    raw = canonical_contract(_string_input_contract(contract_dict, EVIL))
    result = _in_child(
        f"""
        import json
        from tcme.wire import parse_contract
        contract = parse_contract(bytes.fromhex({raw.hex()!r}))
        out = {{}}
        for label, value in (("attack", {ATTACK!r}), ("honest", "a" * 90)):
            try:
                contract.check_values("alice", {{"secret": value}})
                out[label] = "accepted"
            except Exception as err:
                out[label] = err.check
        print(json.dumps(out))
        """
    )
    assert result == {"attack": "input.alice.secret", "honest": "accepted"}


def test_catastrophic_capability_test_value_is_refused_promptly_attack(contract_dict):
    body = _string_input_contract(contract_dict, EVIL)
    body["capability_tests"] = [
        {"inputs": {"secret": ATTACK, "limit": 1}, "expected": {"verdict": "yes"}}
    ]
    body["capability_token_budget"] = 256
    result = _in_child(
        f"""
        import json
        from tcme.wire import canonical_contract
        try:
            canonical_contract(json.loads({json.dumps(body)!r}))
            print(json.dumps({{"check": None}}))
        except Exception as err:
            print(json.dumps({{"check": err.check}}))
        """
    )
    assert result == {"check": "contract.capability_tests[0].inputs.secret"}


def test_catastrophic_json_schema_patterns_finish_promptly_attack():
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string", "pattern": f"^{EVIL}$"}},
        "patternProperties": {f"^{EVIL}$": {"type": "integer"}},
        "additionalProperties": False,
    }
    result = _in_child(
        f"""
        import json
        from tcme.contract.jsonschema_check import violations, parse_schema
        schema = parse_schema(json.loads({json.dumps(schema)!r}), "schema")
        print(json.dumps({{
            "pattern": violations(schema, {{"word": {ATTACK!r}}}),
            "key": violations(schema, {{{ATTACK!r}: 1}}),
            "honest": violations(schema, {{"word": "aaaa", "aaa": 1}}),
            "honest_bad_value": violations(schema, {{"aaa": "x"}}),
        }}))
        """
    )
    assert result == {
        "pattern": "at /word: pattern constraint",
        "key": "at /: additionalProperties constraint",
        "honest": None,
        "honest_bad_value": "at /aaa: type constraint",
    }


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [(r"(a)\1", "backreference"), ("(?=a)a", "lookahead"), ("(?<=a)b", "lookbehind")],
)
def test_patterns_re2_cannot_run_are_refused_at_contract_time_fail(contract_dict, pattern, reason):
    with pytest.raises(ContractError) as err:
        canonical_contract(_string_input_contract(contract_dict, pattern))
    assert err.value.check == "contract.inputs[0].pattern", reason
    assert "RE2" in err.value.detail


def test_grammar_output_pattern_is_re2(contract_dict):
    contract_dict["outputs"][1]["pattern"] = r"([a-z]+)\1"
    with pytest.raises(ContractError) as err:
        canonical_contract(contract_dict)
    assert err.value.check == "contract.outputs[1].pattern"
    contract_dict["outputs"][1]["pattern"] = EVIL
    reason = parse_contract(canonical_contract(contract_dict)).output("reason")
    assert not reason.accepts(ATTACK)
    assert reason.accepts("aaaa")


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "string", "pattern": r"(a)\1"}, "s.pattern"),
        ({"type": "object", "patternProperties": {"(?=x)": {}}}, "s.patternProperties"),
        ({"properties": {"p": {"pattern": "(?<=a)"}}}, "s.properties.p.pattern"),
        ({"propertyNames": {"pattern": r"(x)\1"}}, "s.propertyNames.pattern"),
    ],
)
def test_json_schema_patterns_re2_refuses_are_refused_fail(schema, where):
    with pytest.raises(ContractError) as err:
        jsonschema_check.parse_schema(schema, "s")
    assert err.value.check.startswith(where) or where in err.value.check, err.value.check
    assert "RE2" in str(err.value)


def test_schema_shapes_that_would_bypass_re2_are_refused_fail():
    # jsonschema evaluates unevaluatedProperties' pattern matches with Python's re.
    with pytest.raises(ContractError, match="unevaluatedProperties"):
        jsonschema_check.parse_schema(
            {"patternProperties": {"^a+$": {}}, "unevaluatedProperties": False}, "s"
        )
    # A nested $schema would switch jsonschema to its own validator class (and re).
    with pytest.raises(ContractError, match=r"\$schema"):
        jsonschema_check.parse_schema(
            {"properties": {"x": {"$schema": jsonschema_check.DRAFT_2020_12}}}, "s"
        )


def test_pattern_names_and_values_are_not_treated_as_patterns():
    # A property *named* "pattern" and a const holding a "pattern" key are not regexes.
    schema = {
        "type": "object",
        "properties": {"pattern": {"type": "string"}},
        "const": {"pattern": "(a)\\1"},
    }
    assert jsonschema_check.parse_schema(schema, "s") is schema


def test_root_schema_reference_stays_on_re2():
    """``$ref: "#"`` back to a root with ``$schema`` keeps the RE2 keywords."""
    schema = {
        "$schema": jsonschema_check.DRAFT_2020_12,
        "type": "object",
        "properties": {"w": {"type": "string", "pattern": "^a+$"}, "next": {"$ref": "#"}},
    }
    jsonschema_check.parse_schema(schema, "s")
    assert jsonschema_check.violations(schema, {"next": {"w": "ab"}}) == (
        "at /next/w: pattern constraint"
    )
    assert jsonschema_check.violations(schema, {"next": {"w": "aa"}}) is None


def test_compile_pattern_bounds_and_caches():
    with pytest.raises(ContractError, match="length"):
        regex.compile_pattern("a" * (regex.MAX_PATTERN_CHARS + 1), "p")
    with pytest.raises(ContractError, match="expected a pattern string"):
        regex.compile_pattern(7, "p")
    assert regex.compile_pattern("x+", "p") is regex.compile_pattern("x+", "q")
