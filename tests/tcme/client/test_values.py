"""``--value`` parsing follows the contract's types and never echoes a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from attestation.errors import UsageError
from tcme.client.values import parse_values
from tcme.wire import PartyKeys, parse_contract
from tests.contracts import example_template, fill_template


@pytest.fixture(scope="module")
def contract():
    template = example_template("millionaires")
    template["inputs"] = template["inputs"] + [
        {"party": "bob", "name": "bob_note", "type": "string", "max_len": 10}
    ]
    template["prompt"] += " {bob_note}"
    keys = {n: PartyKeys.generate().public_entry(n) for n in ("alice", "bob")}
    return parse_contract(fill_template(template, keys))


def test_single_input_bare_value(contract):
    assert parse_values(contract, "alice", ["1234"]) == {"alice_wealth": 1234}


def test_named_values(contract):
    values = parse_values(contract, "bob", ["bob_wealth=5", "bob_note=hi=there"])
    assert values == {"bob_wealth": 5, "bob_note": "hi=there"}


@pytest.mark.parametrize(
    ("party", "given", "check"),
    [
        ("bob", ["5"], "input.value"),
        ("alice", ["alice_wealth=1", "alice_wealth=2"], "input.name"),
        ("alice", ["bob_wealth=1"], "input.name"),
        ("bob", ["bob_wealth=1"], "input.missing"),
        ("alice", ["12.5e3"], "input.type"),
        ("carol", ["1"], "input.party"),
    ],
)
def test_bad_values_fail(contract, party, given, check):
    with pytest.raises(UsageError) as info:
        parse_values(contract, party, given)
    assert info.value.check == check
    assert "12.5e3" not in info.value.message()


def test_json_input_is_parsed_then_schema_checked():
    from tcme.contract import load_contract

    example = Path(__file__).resolve().parents[3] / "examples/graph-colouring"
    keys = {n: PartyKeys.generate() for n in ("prover", "verifier")}
    loaded = load_contract(example, keys=keys)
    values = parse_values(loaded.contract, "verifier", ["[[0, 1], [1, 2]]"])
    assert values == {"edges": [[0, 1], [1, 2]]}
    loaded.contract.inputs_of("verifier")[0].check(values["edges"])
    with pytest.raises(UsageError, match="must be JSON text") as err:
        parse_values(loaded.contract, "verifier", ["[[0, 1"])
    assert "[[0, 1" not in str(err.value)
