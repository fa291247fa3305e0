"""Capability records: canonical form, the session binding parties check, the policy minimum."""

from __future__ import annotations

import os
import re

import pytest

from attestation.binding import report_data_for
from attestation.errors import BindingError, ParseError, PolicyError
from tcme.contract import check_capability, parse_record, session_capability
from tcme.contract.capability import CaseOutcome, build_record
from tcme.wire import canonical_contract, parse_contract

SESSION = bytes(range(16))
CLAIMS = bytes(32)


@pytest.fixture
def contract(contract_dict):
    contract_dict["capability_tests"] = [
        {"inputs": {"secret": "ab", "limit": 1}, "expected": {"verdict": "yes"}},
        {"inputs": {"secret": "ab", "limit": 5}, "expected": {"verdict": "no"}},
    ]
    contract_dict["capability_token_budget"] = 400
    return parse_contract(canonical_contract(contract_dict))


def _record(contract, outcomes=None, session=SESSION):
    outcomes = outcomes or [
        CaseOutcome(True, {"verdict": "yes"}),
        CaseOutcome(False, {}, error="output.incomplete"),
    ]
    return build_record(
        session_id=session, contract_digest=contract.digest, claims_digest=CLAIMS, outcomes=outcomes
    )


def test_record_round_trip(contract):
    raw = _record(contract)
    record = parse_record(raw)
    assert (record.passed, record.total, record.score) == (1, 2, 0.5)
    assert record.results[1].error == "output.incomplete"
    assert record.meets(50) and not record.meets(51)
    assert record.summary() == {"digest": record.digest.hex(), "passed": 1, "total": 2}


def test_record_whose_score_disagrees_with_its_results_fail(contract):
    raw = _record(contract).replace(b'"passed":1', b'"passed":2')
    with pytest.raises(ParseError, match=re.escape("capability.score")):
        parse_record(raw)


def test_party_side_binding(contract):
    raw = _record(contract)
    record = session_capability(raw, claims_digest=CLAIMS, contract=contract, session_id=SESSION)
    assert record is not None and record.digest == parse_record(raw).digest
    with pytest.raises(BindingError, match=re.escape("capability.missing")):
        session_capability(b"", claims_digest=CLAIMS, contract=contract, session_id=SESSION)
    with pytest.raises(BindingError, match=re.escape("capability.session_id")):
        session_capability(raw, claims_digest=CLAIMS, contract=contract, session_id=os.urandom(16))
    with pytest.raises(BindingError, match=re.escape("capability.claims_digest")):
        session_capability(raw, claims_digest=b"\1" * 32, contract=contract, session_id=SESSION)
    lying = _record(contract, [CaseOutcome(True, {"verdict": "no"}), CaseOutcome(False, {}, "x")])
    with pytest.raises(BindingError, match=re.escape("capability.results[0]")):
        session_capability(lying, claims_digest=CLAIMS, contract=contract, session_id=SESSION)
    short = _record(contract, [CaseOutcome(True, {"verdict": "yes"})])
    with pytest.raises(BindingError, match=re.escape("capability.total")):
        session_capability(short, claims_digest=CLAIMS, contract=contract, session_id=SESSION)


def test_a_record_without_tests_is_refused_fail(contract_dict, contract):
    contract_dict.pop("capability_tests")
    contract_dict.pop("capability_token_budget")
    plain = parse_contract(canonical_contract(contract_dict))
    assert session_capability(b"", claims_digest=CLAIMS, contract=plain, session_id=SESSION) is None
    with pytest.raises(BindingError, match=re.escape("capability.unexpected")):
        session_capability(
            _record(contract), claims_digest=CLAIMS, contract=plain, session_id=SESSION
        )


def test_binding_appends_the_capability_digest_only_when_present(contract):
    record = parse_record(_record(contract))
    nonce = os.urandom(32)
    plain = report_data_for(CLAIMS, contract.digest, SESSION, nonce)
    bound = report_data_for(CLAIMS, contract.digest, SESSION, nonce, record.digest)
    assert plain != bound
    other = parse_record(
        _record(
            contract, [CaseOutcome(True, {"verdict": "yes"}), CaseOutcome(True, {"verdict": "no"})]
        )
    )
    assert bound != report_data_for(CLAIMS, contract.digest, SESSION, nonce, other.digest)


def test_policy_minimum(contract):
    record = parse_record(_record(contract))
    check_capability(None, record)
    check_capability(None, None)
    check_capability(0.5, record)
    with pytest.raises(PolicyError) as caught:
        check_capability(0.8, record)
    assert caught.value.check == "capability.score"
    assert caught.value.actual == "1/2 = 0.5"
    with pytest.raises(PolicyError, match=re.escape("capability.missing")):
        check_capability(0.1, None)
