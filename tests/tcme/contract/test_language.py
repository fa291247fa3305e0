"""Kind ``general``: what a valid contract looks like, and every rule that refuses one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import TcmeError
from tcme.base.keys import HpkePrivateKey
from tcme.contract.errors import ContractError, OutputValueError
from tcme.wire import (
    InputError,
    PartyKeys,
    canonical_contract,
    parse_contract,
)
from tests.contracts import millionaires_contract

CANARY = "zebra canary quartz"


def test_general_contract_parses_into_turns(contract_dict):
    contract = parse_contract(canonical_contract(contract_dict))
    assert contract.kind == "general"
    assert [o.name for o in contract.outputs] == ["verdict", "reason"]
    verdict, reason = contract.outputs
    assert verdict.turn.references == {"secret", "limit"}
    assert reason.turn.references == {"verdict", "secret"}
    assert reason.turn.max_tokens == 6  # inherited from decoding
    assert verdict.declassify == (("secret", ("bob",)),)
    assert contract.outputs_for("bob") == (verdict,)
    assert contract.inputs_of("carol") == ()  # a receiving-only party is allowed
    assert contract.check_values("carol", {}) == {}
    # Canonical: any JSON layout gives the same bytes and digest.
    raw = canonical_contract(json.dumps(contract_dict, indent=3))
    assert raw == contract.raw
    assert contract.digest == hashlib.sha256(raw).digest()


def _fixed_keys(byte: int) -> PartyKeys:
    return PartyKeys(
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes([byte]) * 32),
        HpkePrivateKey.from_seed(bytes([byte]) * 96),
    )


# SHA-256 of the canonical millionaires contract for the fixed keys below,
# computed with the code as it was before the general kind existed (commit
# aafa257): adding a kind must not change a single byte of enum-decision.
ENUM_DECISION_DIGEST = "e9eec70d458031f8a5b3d22f007b99d17d4c9d158dae5d556c21649f79c2297f"


def test_enum_decision_bytes_and_digest_unchanged():
    contract = millionaires_contract(("alice", _fixed_keys(1)), ("bob", _fixed_keys(2)))
    raw = canonical_contract(contract)
    assert hashlib.sha256(raw).hexdigest() == ENUM_DECISION_DIGEST
    parsed = parse_contract(raw)
    assert parsed.kind == "enum-decision"
    assert all(o.turn is None for o in parsed.outputs)
    assert parsed.capability_tests == ()


def _set(contract: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    target = contract
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    elif isinstance(target, list) and path[-1] == len(target):
        target.append(value)
    else:
        target[path[-1]] = value
    return contract


_DELETE = object()

BAD = [
    # (path, value, check that must fail)
    (("inputs", 0, "type"), "blob", "contract.inputs[0].type"),
    (("inputs", 0, "pattern"), "[unclosed", "contract.inputs[0].pattern"),
    (("inputs", 0, "max_bytes"), 0, "contract.inputs[0].max_bytes"),
    (("inputs", 0, "may_flow_to"), ["mallory"], "contract.inputs[0].may_flow_to"),
    (("inputs", 0, "colour"), "red", "contract.inputs[0]"),
    (("inputs", 1, "min"), 101, "contract.inputs[1].max"),
    (("inputs", 1, "party"), "mallory", "contract.inputs[1].party"),
    (("inputs", 1, "name"), "secret", "contract.inputs[1].name"),
    (("inputs", 1, "name"), "verdict", "contract.outputs[0].name"),
    (("decoding", "temperature"), 1, "contract.decoding.temperature"),
    (("decoding", "stop"), ["x" * 33], "contract.decoding.stop"),
    (("decoding", "stop"), ["a", "a"], "contract.decoding.stop"),
    (("outputs", 0, "type"), "free-text", "contract.outputs[0].type"),
    (("outputs", 0, "values"), ["yes"], "contract.outputs[0].values"),
    (("outputs", 0, "max_tokens"), 513, "contract.outputs[0].max_tokens"),
    (("outputs", 0, "prompt"), "Uses {reason} before it exists", "contract.outputs[0].prompt"),
    (("outputs", 0, "prompt"), "Unknown {nothing}", "contract.outputs[0].prompt"),
    (("outputs", 0, "prompt"), "Bad { brace {secret}", "contract.prompt"),
    (("outputs", 0, "system"), "System sees {secret}", "contract.outputs[0].system"),
    (("outputs", 0, "name"), "secret", "contract.outputs[0].name"),
    (("outputs", 1, "name"), "verdict", "contract.outputs[1].name"),
    (("outputs", 1, "grammar"), "root ::= missing", "contract.outputs[1].grammar"),
    (("outputs", 1, "grammar"), "root ::= root [a-z]", "contract.outputs[1].grammar"),
    (("outputs", 1, "max_chars"), 0, "contract.outputs[1].max_chars"),
    (("outputs", 1, "recipients"), ["alice", "alice"], "contract.outputs[1].recipients"),
    (("outputs", 1, "declassify"), {"secret": []}, "contract.outputs[1].declassify.secret"),
    (("min_score_percent",), 50, "contract.min_score_percent"),
    (("timeout_seconds",), 0, "contract.timeout_seconds"),
    (("prompt",), "enum-decision field", "contract"),
    (
        ("inputs", 2),
        {"party": "carol", "name": "unused", "type": "enum", "values": ["a"]},
        "contract.inputs",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "check"), BAD, ids=[b[2] + ":" + str(b[1])[:20] for b in BAD]
)
def test_rule_violations_are_refused_fail(contract_dict, path, value, check):
    _set(contract_dict, path, value)
    with pytest.raises(TcmeError) as caught:
        parse_contract(canonical_contract(contract_dict))
    assert caught.value.check == check, caught.value.message()


def test_floats_are_refused_fail(contract_dict):
    contract_dict["inputs"][1]["max"] = 99.5
    with pytest.raises(ContractError, match="floats are not allowed"):
        canonical_contract(contract_dict)


def test_unused_internal_output_is_refused_fail(contract_dict):
    contract_dict["outputs"][1]["recipients"] = []
    with pytest.raises(ContractError, match="no recipients and no later prompt uses it"):
        parse_contract(canonical_contract(contract_dict))


# --- inputs -----------------------------------------------------------------------------

INPUT_TYPES = {
    "integer": ({"min": -5, "max": 5}, [0, -5, 5], [6, -6, "3", 2.0, True, None]),
    "number": (
        {"min": "-1.5", "max": "2", "max_decimals": 2},
        ["0", "-1.5", "2", "1.25", "2.00"],
        ["2.01", "-1.51", "1.255", "1e0", "01", "+1", 1, "", "nan"],
    ),
    "string": (
        {"max_len": 5, "max_bytes": 6, "pattern": "[a-zé]*"},
        ["", "abc", "ééé", "abcde"],
        ["abcdef", "éééé", "ABC", 5, None],
    ),
    "enum": ({"values": ["red", "green"]}, ["red", "green"], ["blue", "Red", 1]),
    "json": (
        {
            "schema": {
                "type": "object",
                "properties": {"n": {"type": "integer", "maximum": 9}},
                "required": ["n"],
                "additionalProperties": False,
            },
            "max_bytes": 12,
        },
        [{"n": 1}, {"n": 9}],
        [{"n": 10}, {"n": "1"}, {}, {"n": 1, "x": 2}, [1], {"n": 1, "pad": "x" * 20}],
    ),
}


@pytest.mark.parametrize("kind", sorted(INPUT_TYPES))
def test_input_types_accept_and_refuse(contract_dict, kind):
    declaration, good, bad = INPUT_TYPES[kind]
    contract_dict["inputs"][1] = {
        "party": "bob",
        "name": "limit",
        "type": kind,
        "may_flow_to": ["alice"],
        **declaration,
    }
    contract = parse_contract(canonical_contract(contract_dict))
    spec = contract.inputs[1]
    for value in good:
        spec.check(value)
    for value in bad:
        with pytest.raises(InputError) as caught:
            spec.check(value)
        assert caught.value.check == "input.bob.limit"


def test_input_errors_never_quote_the_value(contract_dict):
    contract = parse_contract(canonical_contract(contract_dict))
    spec = contract.inputs[0]
    for value in (CANARY.upper(), CANARY * 3):
        with pytest.raises(InputError) as caught:
            spec.check(value)
        text = json.dumps(caught.value.to_dict())
        assert CANARY not in text.lower()
    contract_dict["inputs"][1] = {
        "party": "bob",
        "name": "limit",
        "type": "json",
        "schema": {"type": "integer"},
        "max_bytes": 100,
        "may_flow_to": ["alice"],
    }
    contract = parse_contract(canonical_contract(contract_dict))
    with pytest.raises(InputError) as caught:
        contract.inputs[1].check(CANARY)
    assert CANARY not in json.dumps(caught.value.to_dict())


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"$ref": "https://example.com/schema.json"},
        {"$schema": "http://json-schema.org/draft-04/schema#"},
        ["not", "an", "object"],
    ],
)
def test_bad_input_schemas_are_refused_fail(contract_dict, schema):
    contract_dict["inputs"][1] = {
        "party": "bob",
        "name": "limit",
        "type": "json",
        "schema": schema,
        "max_bytes": 100,
        "may_flow_to": ["alice"],
    }
    with pytest.raises(ContractError) as caught:
        parse_contract(canonical_contract(contract_dict))
    assert caught.value.check.startswith("contract.inputs[1].schema")


def test_inputs_render_as_prompt_text(contract_dict):
    contract_dict["inputs"][1] = {
        "party": "bob",
        "name": "limit",
        "type": "json",
        "schema": {"type": "object"},
        "max_bytes": 100,
        "may_flow_to": ["alice"],
    }
    contract = parse_contract(canonical_contract(contract_dict))
    assert contract.inputs[1].render({"b": [1, 2], "a": "é"}) == '{"a":"é","b":[1,2]}'
    assert contract.inputs[0].render("plain") == "plain"


# --- outputs ------------------------------------------------------------------------------


def test_grammar_output_final_check(contract_dict):
    contract_dict["outputs"][1]["pattern"] = "[a-z]+( [a-z]+)*"
    reason = parse_contract(canonical_contract(contract_dict)).output("reason")
    assert reason.grammar() == "root ::= [a-z ]{1,30}"
    assert reason.normalize("two words") == "two words"
    for bad in ("x" * 31, " leading space", 7):
        with pytest.raises(OutputValueError):
            reason.normalize(bad)
    assert reason.accepts("fine") and not reason.accepts("y" * 31)


def test_json_output_gets_a_grammar_and_a_compact_value(contract_dict):
    contract_dict["outputs"][1] = {
        "name": "report",
        "type": "json",
        "schema": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "why": {"type": "string", "maxLength": 9}},
            "required": ["ok", "why"],
            "additionalProperties": False,
        },
        "max_chars": 60,
        "prompt": "Report on {verdict} for '{secret}'",
        "recipients": ["alice"],
    }
    report = parse_contract(canonical_contract(contract_dict)).output("report")
    assert "root ::=" in report.grammar()
    assert report.normalize('{ "why" : "short",\n "ok": true }') == '{"ok":true,"why":"short"}'
    for bad in (
        '{"ok": true}',
        '{"ok": 1, "why": ""}',
        "not json",
        '{"ok":true,"why":"ten chars!!"}',
    ):
        with pytest.raises(OutputValueError):
            report.normalize(bad)


def test_enum_output_final_check(contract_dict):
    verdict = parse_contract(canonical_contract(contract_dict)).output("verdict")
    assert verdict.grammar() == 'root ::= "yes" | "no"\n'
    assert verdict.normalize("yes") == "yes"
    with pytest.raises(OutputValueError):
        verdict.normalize("maybe")


# --- capability tests in the contract -------------------------------------------------------


def test_capability_tests_are_checked_when_parsed(contract_dict):
    contract_dict["capability_tests"] = [
        {"inputs": {"secret": "abc", "limit": 2}, "expected": {"verdict": "yes"}}
    ]
    contract_dict["min_score_percent"] = 100
    contract_dict["capability_token_budget"] = 300
    contract = parse_contract(canonical_contract(contract_dict))
    assert contract.capability_tests[0].expected == {"verdict": "yes"}
    assert contract.min_score_percent == 100
    assert contract.summary()["capability_token_budget"] == 300
    bad_cases = [
        ({"secret": "abc"}, {"verdict": "yes"}, "contract.capability_tests[0].inputs"),
        (
            {"secret": "ABC", "limit": 2},
            {"verdict": "yes"},
            "contract.capability_tests[0].inputs.secret",
        ),
        (
            {"secret": "abc", "limit": 2},
            {"verdict": "maybe"},
            "contract.capability_tests[0].expected.verdict",
        ),
        ({"secret": "abc", "limit": 2}, {"nothing": "x"}, "contract.capability_tests[0].expected"),
        ({"secret": "abc", "limit": 2}, {}, "contract.capability_tests[0].expected"),
    ]
    for inputs, expected, check in bad_cases:
        contract_dict["capability_tests"] = [{"inputs": inputs, "expected": expected}]
        with pytest.raises(ContractError) as caught:
            parse_contract(canonical_contract(contract_dict))
        assert caught.value.check == check


def test_capability_tests_state_a_bounded_token_budget_fail(contract_dict):
    from tcme.contract.capability import MAX_TOKEN_BUDGET

    contract_dict["capability_tests"] = [
        {"inputs": {"secret": "abc", "limit": 2}, "expected": {"verdict": "yes"}}
    ]
    for budget, detail in (
        (None, "need a total token budget"),
        (0, "out of range"),
        (MAX_TOKEN_BUDGET + 1, "out of range"),
        (True, "expected an integer"),
    ):
        if budget is None:
            contract_dict.pop("capability_token_budget", None)
        else:
            contract_dict["capability_token_budget"] = budget
        with pytest.raises(ContractError, match=detail) as caught:
            parse_contract(canonical_contract(contract_dict))
        assert caught.value.check == "contract.capability_token_budget"
    contract_dict["capability_token_budget"] = MAX_TOKEN_BUDGET
    assert parse_contract(canonical_contract(contract_dict)).capability_token_budget == (
        MAX_TOKEN_BUDGET
    )
    # A budget with nothing to spend it on is a mistake, not a no-op.
    contract_dict.pop("capability_tests")
    with pytest.raises(ContractError, match="needs capability_tests"):
        parse_contract(canonical_contract(contract_dict))
