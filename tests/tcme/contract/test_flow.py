"""Information flow: leaking contracts are refused when parsed, with every offending flow."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tcme.contract import analyse, contract_flows, output_labels
from tcme.contract.errors import ContractError
from tcme.wire import canonical_contract, parse_contract


def _flows(contract_dict):
    return {
        (f.output, f.recipient, f.source, f.ground)
        for f in contract_flows(parse_contract(canonical_contract(contract_dict)))
    }


def test_permitted_flows_name_their_ground(contract_dict):
    assert _flows(contract_dict) == {
        ("verdict", "alice", "secret", "owner"),
        ("verdict", "alice", "limit", "may_flow_to"),
        ("verdict", "bob", "secret", "declassify"),
        ("verdict", "bob", "limit", "owner"),
        # reason uses verdict, so it carries verdict's labels too.
        ("reason", "alice", "secret", "owner"),
        ("reason", "alice", "limit", "may_flow_to"),
    }


def test_output_to_a_recipient_the_owner_did_not_allow_is_refused_fail(contract_dict):
    contract_dict["outputs"][1]["recipients"] = ["alice", "carol"]
    with pytest.raises(ContractError) as caught:
        parse_contract(canonical_contract(contract_dict))
    assert caught.value.check == "contract.flow"
    assert "output 'reason' derived from alice.secret may not reach carol" in caught.value.detail
    assert "output 'reason' derived from bob.limit may not reach carol" in caught.value.detail


def test_labels_propagate_through_internal_outputs_fail(contract_dict):
    """An internal turn does not launder its label: the later output still carries it."""
    contract_dict["outputs"][0]["recipients"] = []
    contract_dict["outputs"][0].pop("declassify")
    contract_dict["outputs"][1]["prompt"] = "Explain {verdict}"
    contract_dict["outputs"][1]["recipients"] = ["alice", "bob"]
    with pytest.raises(
        ContractError,
        match=re.escape("output 'reason' derived from alice.secret may not reach bob"),
    ):
        parse_contract(canonical_contract(contract_dict))
    # Declassifying at the internal turn releases nothing downstream either.
    contract_dict["outputs"][0]["declassify"] = {}
    contract_dict["outputs"][1]["declassify"] = {"secret": ["bob"]}
    contract = parse_contract(canonical_contract(contract_dict))
    labels = output_labels(contract.inputs, contract.outputs)
    assert labels == {"verdict": {"secret", "limit"}, "reason": {"secret", "limit"}}


def test_may_flow_to_allows_every_output(contract_dict):
    contract_dict["inputs"][0]["may_flow_to"] = ["bob", "carol"]
    contract_dict["outputs"][0].pop("declassify")
    contract_dict["outputs"][1]["recipients"] = ["alice", "bob"]
    contract_dict["inputs"][1]["may_flow_to"] = ["alice"]
    flows = _flows(contract_dict)
    assert ("reason", "bob", "secret", "may_flow_to") in flows
    assert ("verdict", "bob", "secret", "may_flow_to") in flows


def test_may_flow_to_is_per_input_fail(contract_dict):
    """Bob allowing his input to reach Alice says nothing about Alice's secret reaching Carol."""
    contract_dict["inputs"][1]["may_flow_to"] = ["alice", "carol"]
    contract_dict["outputs"][0]["recipients"] = ["alice", "bob", "carol"]
    with pytest.raises(
        ContractError,
        match=re.escape("output 'verdict' derived from alice.secret may not reach carol"),
    ):
        parse_contract(canonical_contract(contract_dict))


@pytest.mark.parametrize(
    ("declassify", "message"),
    [
        ({"limit": ["alice"], "secret": ["bob"]}, None),
        ({"secret": ["carol"]}, "to non-recipient"),
        ({"nothing": ["bob"]}, "is not derived from it"),
    ],
)
def test_declassify_must_name_a_real_flow(contract_dict, declassify, message):
    contract_dict["outputs"][0]["declassify"] = declassify
    if message is None:
        assert ("verdict", "alice", "limit", "may_flow_to") in _flows(contract_dict)
        return
    with pytest.raises(ContractError, match=message) as caught:
        parse_contract(canonical_contract(contract_dict))
    assert caught.value.check == "contract.flow"


def test_every_leak_is_reported(contract_dict):
    contract_dict["inputs"][1].pop("may_flow_to")
    contract_dict["outputs"][0].pop("declassify")
    with pytest.raises(ContractError) as caught:
        parse_contract(canonical_contract(contract_dict))
    assert caught.value.actual == "3 forbidden flow(s)"


def test_analyse_returns_flows_and_leaks_as_data(contract_dict):
    contract = parse_contract(canonical_contract(contract_dict))
    inputs = tuple(dataclasses.replace(i, may_flow_to=()) for i in contract.inputs)
    outputs = tuple(dataclasses.replace(o, declassify=()) for o in contract.outputs)
    flows, leaks = analyse(inputs, outputs)
    assert {(x.output, x.recipient, x.source) for x in leaks} == {
        ("verdict", "alice", "limit"),
        ("verdict", "bob", "secret"),
        ("reason", "alice", "limit"),
    }
    assert leaks[0].describe().startswith("output 'verdict' derived from ")
    assert {f.ground for f in flows} == {"owner"}
