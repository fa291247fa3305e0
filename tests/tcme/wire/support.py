"""Shared keys, the millionaires contract, claims and sealed messages for the tcme.wire tests."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519

from tcme.wire import (
    HpkePrivateKey,
    PartyKeys,
    build_claims,
    canonical_contract,
    parse_claims,
    parse_contract,
    seal_input,
    seal_output,
)
from tests.contracts import millionaires_contract

ALICE = PartyKeys.generate()
BOB = PartyKeys.generate()
CAROL = PartyKeys.generate()
ENCLAVE_HPKE = HpkePrivateKey.generate()
ENCLAVE_SIGNING = ed25519.Ed25519PrivateKey.generate()
SESSION = bytes(range(16))


def millionaires_dict() -> dict:
    return millionaires_contract(("alice", ALICE), ("bob", BOB), max_wealth=1000)


def millionaires():
    return parse_contract(canonical_contract(millionaires_dict()))


def enclave_claims(hpke: HpkePrivateKey = ENCLAVE_HPKE, signing=ENCLAVE_SIGNING):
    return parse_claims(
        build_claims(
            runtime="tcme 0.1.0",
            tee="sev-snp",
            model_root_digest="ab" * 32,
            model_hash_algorithm="sha256",
            model_signer="spki:1234",
            model_issuer=None,
            model_method="key",
            hpke_public_key=hpke.public.raw,
            signing_public_key=signing.public_key().public_bytes_raw(),
        )
    )


def seal_party_input(party="alice", keys=ALICE, values=None, claims=None, session=SESSION):
    return seal_input(
        claims=claims or enclave_claims(),
        contract=millionaires(),
        session_id=session,
        party=party,
        values=values or {"first_wealth": 12},
        signing_key=keys,
    )


def sealed_outputs(value="second", salt=b"\x07" * 32, contract=None):
    return seal_output(
        contract=contract or millionaires(),
        session_id=SESSION,
        name="richer",
        value=value,
        salt=salt,
    )
