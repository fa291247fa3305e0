"""A hostile proxy's contract is compared with the pinned digest before anything parses it.

The attack: the party pins contract A; the proxy answers Attest with other
contract bytes built to hurt the parser (deep nesting here; catastrophic
patterns or huge schemas alike). The party must refuse on the digest, without
handing those bytes to the contract parser at all.
"""

from __future__ import annotations

import hashlib
import os

import pytest

import tcme.client.verify as verify_module
from attestation.errors import PolicyError
from tcme.client.policy import ContractExpectation, PartyPolicy
from tcme.client.verify import verify_attestation
from tcme.v1 import tcme_pb2

HOSTILE = b'{"kind":"general","parties":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_contract_digest_is_checked_before_parsing_attack(monkeypatch):
    parsed: list[bytes] = []
    monkeypatch.setattr(verify_module, "parse_contract", lambda raw: parsed.append(raw))
    agreed = ContractExpectation(digest=hashlib.sha256(b"the agreed contract").digest(), source="t")
    # Nothing else of the policy is reached: the digest check comes first.
    policy = PartyPolicy(evidence=None, model=None, contract=agreed)
    session_id = os.urandom(16)
    response = tcme_pb2.AttestResponse(session_id=session_id, contract=HOSTILE, claims=b"{")
    with pytest.raises(PolicyError) as err:
        verify_attestation(response, policy=policy, session_id=session_id, nonce=os.urandom(32))
    assert err.value.check == "contract.digest"
    assert err.value.actual == hashlib.sha256(HOSTILE).hexdigest()
    assert parsed == []
