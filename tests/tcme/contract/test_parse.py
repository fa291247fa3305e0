"""tcme.contract.parse: canonical contract bytes, digest, validation failures."""

from __future__ import annotations

import json

import pytest

from attestation.errors import ParseError
from tcme.wire import (
    ContractError,
    InputError,
    canonical_contract,
    contract_digest,
    parse_contract,
    sha256,
)
from tests.tcme.wire.support import millionaires, millionaires_dict


def test_contract_round_trip_and_digest():
    raw = canonical_contract(millionaires_dict())
    # Any JSON layout of the same value canonicalises to the same bytes.
    assert canonical_contract(json.dumps(millionaires_dict(), indent=2)) == raw
    contract = parse_contract(raw)
    assert contract.digest == contract_digest(raw) == sha256(raw)
    assert [p.name for p in contract.parties] == ["alice", "bob"]
    assert [i.name for i in contract.inputs_of("bob")] == ["second_wealth"]
    assert contract.outputs[0].values == ("first", "second", "equal")
    assert contract.outputs_for("alice") == contract.outputs
    assert contract.decoding.temperature == 0
    assert contract.timeout_seconds == 120


def _mutate(path, value):
    contract = millionaires_dict()
    target = contract
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return contract


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "check"),
    [
        (("kind",), "free-text", "contract.kind"),
        (("type",), "tcme/v2/contract", "contract.type"),
        (("decoding", "temperature"), 1, "contract.decoding.temperature"),
        (("decoding", "max_tokens"), 0, "contract.decoding.max_tokens"),
        (("decoding", "top_p"), 1, "contract.decoding"),
        (("prompt",), "Compare {first_wealth} and {third_wealth}", "contract.prompt"),
        (("prompt",), "Only {first_wealth}", "contract.prompt"),
        (("prompt",), "Unbalanced { brace {first_wealth} {second_wealth}", "contract.prompt"),
        (("outputs", 0, "type"), "text", "contract.outputs[0].type"),
        (("outputs", 0, "values"), ["first"], "contract.outputs[0].values"),
        (("outputs", 0, "values"), ['fir"st', "second"], "contract.outputs[0].values"),
        (("outputs", 0, "values"), ["same", "same"], "contract.outputs[0].values"),
        (("outputs", 0, "recipients"), ["alice", "mallory"], "contract.outputs[0].recipients"),
        (("outputs", 0, "recipients"), [], "contract.outputs[0].recipients"),
        (("inputs", 1, "party"), "alice", "contract.inputs"),
        (("inputs", 0, "type"), "float", "contract.inputs[0].type"),
        (("inputs", 0, "min"), 2000, "contract.inputs[0].max"),
        (("inputs", 0, "name"), "Bad-Name", "contract.inputs[0].name"),
        (("parties", 1, "name"), "alice", "contract.parties[1].name"),
        (("parties", 0, "signing_key"), "AAAA", "contract.parties[0].signing_key"),
        (("parties", 0, "hpke_key"), "AAAA", "contract.parties[0].hpke_key"),
        (("timeout_seconds",), 0, "contract.timeout_seconds"),
        (("timeout_seconds",), 10**6, "contract.timeout_seconds"),
        (("extra",), 1, "contract"),
        (("outputs",), DELETE, "contract"),
    ],
)
def test_contract_rejects_fail(path, value, check):
    contract = _mutate(path, value)
    with pytest.raises(ContractError) as info:
        canonical_contract(contract)
    assert info.value.check == check


def test_contract_two_outputs_fail():
    contract = millionaires_dict()
    contract["outputs"].append(dict(contract["outputs"][0], name="other"))
    with pytest.raises(ContractError, match=r"contract.outputs"):
        canonical_contract(contract)


def test_contract_single_party_fail():
    contract = millionaires_dict()
    contract["parties"] = contract["parties"][:1]
    with pytest.raises(ContractError, match=r"contract.parties"):
        canonical_contract(contract)


def test_contract_shared_signing_key_fail():
    contract = millionaires_dict()
    contract["parties"][1]["signing_key"] = contract["parties"][0]["signing_key"]
    with pytest.raises(ContractError, match=r"share a signing key"):
        canonical_contract(contract)


def test_contract_float_temperature_fail():
    with pytest.raises(ContractError, match=r"float"):
        canonical_contract(_mutate(("decoding", "temperature"), 0.0))


def test_parse_contract_requires_canonical_bytes_fail():
    pretty = json.dumps(millionaires_dict(), indent=1).encode()
    with pytest.raises(ParseError, match=r"contract.canonical"):
        parse_contract(pretty)


def test_contract_string_and_enum_inputs():
    contract = millionaires_dict()
    contract["inputs"].append(
        {"party": "bob", "name": "note", "type": "string", "max_len": 5, "pattern": "[a-z]*"}
    )
    contract["inputs"].append({"party": "bob", "name": "mood", "type": "enum", "values": ["ok"]})
    contract["prompt"] += " {note} {mood} {{literal}}"
    parsed = parse_contract(canonical_contract(contract))
    parsed.check_values("bob", {"second_wealth": 3, "note": "abc", "mood": "ok"})
    for bad in ({"note": "toolong"}, {"note": "ABC"}, {"mood": "bad"}, {"second_wealth": True}):
        values = {"second_wealth": 3, "note": "abc", "mood": "ok", **bad}
        with pytest.raises(InputError) as info:
            parsed.check_values("bob", values)
        # An invalid input is still secret: the error never quotes it.
        assert all(str(v) not in info.value.message() for v in bad.values() if v is not True)


def test_input_range_error_does_not_quote_value_fail():
    contract = millionaires()
    with pytest.raises(InputError) as info:
        contract.check_values("alice", {"first_wealth": 987654})
    assert "987654" not in info.value.message()
    assert info.value.check == "input.alice.first_wealth"
