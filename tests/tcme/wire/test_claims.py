"""tcme.wire.claims: the enclave's identity document, round trip and refusals."""

from __future__ import annotations

import json

import pytest

from attestation.errors import ParseError
from tcme.wire import (
    canonical_json,
    parse_claims,
    sha256,
)
from tests.tcme.wire.support import ENCLAVE_HPKE, enclave_claims


def test_claims_round_trip():
    claims = enclave_claims()
    assert claims.tee == "sev-snp"
    assert claims.hpke_public_key.raw == ENCLAVE_HPKE.public.raw
    assert claims.digest == sha256(claims.raw)
    assert claims.summary()["model_root_digest"] == "ab" * 32


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda c: c.update(tee="sgx"), "claims.tee"),
        (lambda c: c["hpke"].update(suite="X25519/HKDF-SHA256/AES-128-GCM"), "claims.hpke.suite"),
        (lambda c: c["signing"].update(public_key="AAAA"), "claims.signing.public_key"),
        (lambda c: c["model"].update(root_digest="XYZ"), "claims.model.root_digest"),
        (lambda c: c.update(extra=1), "claims"),
    ],
)
def test_claims_rejects_fail(mutate, check):
    obj = json.loads(enclave_claims().raw)
    mutate(obj)
    with pytest.raises(ParseError) as info:
        parse_claims(canonical_json(obj))
    assert info.value.check == check
