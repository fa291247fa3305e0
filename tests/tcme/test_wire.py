"""tcme.wire: canonical encodings, contract validation, HPKE envelopes, receipts."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import BindingError, ParseError, SignatureError, UsageError
from tcme.base.keys import hpke_seal
from tcme.wire import (
    ContractError,
    HpkePrivateKey,
    InputError,
    InputRecord,
    OutputError,
    OutputRecord,
    PartyKeys,
    build_claims,
    build_receipt,
    canonical_contract,
    canonical_json,
    contract_digest,
    lp_join,
    open_input,
    open_output,
    output_commitment,
    parse_canonical_json,
    parse_claims,
    parse_contract,
    seal_input,
    seal_output,
    sha256,
    sign_receipt,
    verify_receipt,
)
from tcme.wire.envelope import input_info, input_signing_message
from tests.contracts import millionaires_contract

ALICE = PartyKeys.generate()
BOB = PartyKeys.generate()
CAROL = PartyKeys.generate()
ENCLAVE_HPKE = HpkePrivateKey.generate()
ENCLAVE_SIGNING = ed25519.Ed25519PrivateKey.generate()
SESSION = bytes(range(16))


def _contract_dict() -> dict:
    return millionaires_contract(("alice", ALICE), ("bob", BOB), max_wealth=1000)


def _contract():
    return parse_contract(canonical_contract(_contract_dict()))


def _claims(hpke: HpkePrivateKey = ENCLAVE_HPKE, signing=ENCLAVE_SIGNING):
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


# --- canonical JSON ------------------------------------------------------------------------


def test_canonical_json_sorted_compact_utf8():
    assert (
        canonical_json({"b": 1, "a": ["é", True, None]}) == '{"a":["é",true,null],"b":1}'.encode()
    )


@pytest.mark.parametrize(
    "text",
    [
        b'{"b":1,"a":2}',  # key order
        b'{"a": 1}',  # whitespace
        b'{"a":1,"a":1}',  # duplicate key
        b'{"a":1.5}',  # float
        b'{"a":"\\u00e9"}',  # escaped non-ASCII
        b'{"a":NaN}',
        b'{"a":9007199254740993}',  # beyond 2^53
        b"\xff",
    ],
)
def test_parse_canonical_json_rejects_non_canonical_fail(text):
    with pytest.raises(ParseError):
        parse_canonical_json(text, "thing")


def test_canonical_json_refuses_floats_fail():
    with pytest.raises(ValueError, match=r"float"):
        canonical_json({"temperature": 0.0})


# --- contract -----------------------------------------------------------------------------


def test_contract_round_trip_and_digest():
    raw = canonical_contract(_contract_dict())
    # Any JSON layout of the same value canonicalises to the same bytes.
    assert canonical_contract(json.dumps(_contract_dict(), indent=2)) == raw
    contract = parse_contract(raw)
    assert contract.digest == contract_digest(raw) == sha256(raw)
    assert [p.name for p in contract.parties] == ["alice", "bob"]
    assert [i.name for i in contract.inputs_of("bob")] == ["second_wealth"]
    assert contract.outputs[0].values == ("first", "second", "equal")
    assert contract.outputs_for("alice") == contract.outputs
    assert contract.decoding.temperature == 0
    assert contract.timeout_seconds == 120


def _mutate(path, value):
    contract = _contract_dict()
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
    contract = _contract_dict()
    contract["outputs"].append(dict(contract["outputs"][0], name="other"))
    with pytest.raises(ContractError, match=r"contract.outputs"):
        canonical_contract(contract)


def test_contract_single_party_fail():
    contract = _contract_dict()
    contract["parties"] = contract["parties"][:1]
    with pytest.raises(ContractError, match=r"contract.parties"):
        canonical_contract(contract)


def test_contract_shared_signing_key_fail():
    contract = _contract_dict()
    contract["parties"][1]["signing_key"] = contract["parties"][0]["signing_key"]
    with pytest.raises(ContractError, match=r"share a signing key"):
        canonical_contract(contract)


def test_contract_float_temperature_fail():
    with pytest.raises(ContractError, match=r"float"):
        canonical_contract(_mutate(("decoding", "temperature"), 0.0))


def test_parse_contract_requires_canonical_bytes_fail():
    pretty = json.dumps(_contract_dict(), indent=1).encode()
    with pytest.raises(ParseError, match=r"contract.canonical"):
        parse_contract(pretty)


def test_contract_string_and_enum_inputs():
    contract = _contract_dict()
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
    contract = _contract()
    with pytest.raises(InputError) as info:
        contract.check_values("alice", {"first_wealth": 987654})
    assert "987654" not in info.value.message()
    assert info.value.check == "input.alice.first_wealth"


# --- claims -------------------------------------------------------------------------------


def test_claims_round_trip():
    claims = _claims()
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
    obj = json.loads(_claims().raw)
    mutate(obj)
    with pytest.raises(ParseError) as info:
        parse_claims(canonical_json(obj))
    assert info.value.check == check


# --- inputs -------------------------------------------------------------------------------


def _seal(party="alice", keys=ALICE, values=None, claims=None, session=SESSION):
    return seal_input(
        claims=claims or _claims(),
        contract=_contract(),
        session_id=session,
        party=party,
        values=values or {"first_wealth": 12},
        signing_key=keys,
    )


def _open(sealed, *, party="alice", session=SESSION, key=ENCLAVE_HPKE, contract=None):
    return open_input(
        hpke_key=key,
        contract=contract or _contract(),
        session_id=session,
        party=party,
        enc=sealed.enc,
        ciphertext=sealed.ciphertext,
    )


def test_input_seal_open_round_trip():
    sealed = _seal()
    opened = _open(sealed)
    assert opened.values == {"first_wealth": 12}
    assert opened.commitment == sealed.commitment
    assert opened.ciphertext_sha256 == sha256(sealed.enc + sealed.ciphertext)
    # Nothing of the payload crosses the host in the clear.
    assert b"first_wealth" not in sealed.enc + sealed.ciphertext


def test_input_wrong_enclave_key_fail():
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(_seal(), key=HpkePrivateKey.generate())


def test_input_other_session_fail():
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(_seal(), session=bytes(16))


def test_input_submitted_as_other_party_fail():
    # The host re-labels alice's ciphertext as bob's: the HPKE info differs.
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(_seal(), party="bob")


def test_input_other_contract_fail():
    other = millionaires_contract(("alice", ALICE), ("bob", BOB), max_wealth=2000)
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(_seal(), contract=parse_contract(canonical_contract(other)))


def test_input_tampered_ciphertext_fail():
    sealed = _seal()
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(InputError, match=r"input.decrypt"):
        open_input(
            hpke_key=ENCLAVE_HPKE,
            contract=_contract(),
            session_id=SESSION,
            party="alice",
            enc=sealed.enc,
            ciphertext=bytes(flipped),
        )


def _forge(payload_obj, signer, *, party="alice"):
    """Seal a hand-made envelope to the enclave (as a malicious party or host would)."""
    contract = _contract()
    payload = canonical_json(payload_obj)
    signature = signer.sign(input_signing_message(payload))
    enc, ciphertext = hpke_seal(
        ENCLAVE_HPKE.public,
        lp_join(payload, signature),
        input_info(SESSION, contract.digest, party),
    )
    return open_input(
        hpke_key=ENCLAVE_HPKE,
        contract=contract,
        session_id=SESSION,
        party=party,
        enc=enc,
        ciphertext=ciphertext,
    )


def _payload(**overrides):
    body = {
        "type": "tcme/v1/input",
        "session_id": SESSION.hex(),
        "contract_digest": _contract().digest.hex(),
        "party": "alice",
        "salt": os.urandom(32).hex(),
        "values": {"first_wealth": 12},
    }
    body.update(overrides)
    return body


def test_forged_input_signed_by_other_key_fail():
    # Bob (or the host) seals an input in alice's name: the signature is not alice's.
    with pytest.raises(InputError, match=r"input.signature"):
        _forge(_payload(), BOB.signing_key)


def test_input_payload_bound_to_session_fail():
    with pytest.raises(InputError, match=r"input.binding.session_id"):
        _forge(_payload(session_id=bytes(16).hex()), ALICE.signing_key)


def test_input_payload_bound_to_party_fail():
    with pytest.raises(InputError, match=r"input.binding.party"):
        _forge(_payload(party="bob"), ALICE.signing_key)


def test_input_out_of_range_rejected_by_enclave_fail():
    with pytest.raises(InputError) as info:
        _forge(_payload(values={"first_wealth": 5000}), ALICE.signing_key)
    assert info.value.check == "input.alice.first_wealth"
    assert "5000" not in info.value.message()


def test_input_extra_value_rejected_by_enclave_fail():
    with pytest.raises(InputError, match=r"input.alice.names"):
        _forge(_payload(values={"first_wealth": 1, "second_wealth": 2}), ALICE.signing_key)


def test_seal_input_checks_values_and_key_fail():
    with pytest.raises(InputError):
        _seal(values={"first_wealth": -1})
    with pytest.raises(UsageError, match=r"input.signing_key"):
        _seal(keys=BOB)


# --- outputs ------------------------------------------------------------------------------


def _sealed_outputs(value="second", salt=b"\x07" * 32, contract=None):
    return seal_output(
        contract=contract or _contract(), session_id=SESSION, name="richer", value=value, salt=salt
    )


def test_output_seal_open_each_recipient():
    contract = _contract()
    sealed = dict((r, (e, c)) for r, e, c in _sealed_outputs())
    assert set(sealed) == {"alice", "bob"}
    for name, keys in (("alice", ALICE), ("bob", BOB)):
        enc, ciphertext = sealed[name]
        opened = open_output(
            name="richer",
            recipient=name,
            enc=enc,
            ciphertext=ciphertext,
            hpke_key=keys,
            session_id=SESSION,
            contract_digest=contract.digest,
        )
        assert opened.value == "second"
        assert opened.commitment == output_commitment("richer", "second", b"\x07" * 32)


def test_output_non_recipient_cannot_open_fail():
    # Contract where only alice receives the output; bob's key opens nothing.
    contract_dict = _contract_dict()
    contract_dict["outputs"][0]["recipients"] = ["alice"]
    contract = parse_contract(canonical_contract(contract_dict))
    sealed = _sealed_outputs(contract=contract)
    assert [r for r, _, _ in sealed] == ["alice"]
    _, enc, ciphertext = sealed[0]
    for recipient in ("alice", "bob"):
        with pytest.raises(OutputError, match=r"output.decrypt"):
            open_output(
                name="richer",
                recipient=recipient,
                enc=enc,
                ciphertext=ciphertext,
                hpke_key=BOB,
                session_id=SESSION,
                contract_digest=contract.digest,
            )


def test_output_reordered_between_recipients_fail():
    contract = _contract()
    sealed = {r: (e, c) for r, e, c in _sealed_outputs()}
    enc, ciphertext = sealed["bob"]
    # The host hands bob's ciphertext to alice: alice's key does not open it.
    with pytest.raises(OutputError, match=r"output.decrypt"):
        open_output(
            name="richer",
            recipient="alice",
            enc=enc,
            ciphertext=ciphertext,
            hpke_key=ALICE,
            session_id=SESSION,
            contract_digest=contract.digest,
        )


# --- receipts -----------------------------------------------------------------------------


def _session_outputs(value="first"):
    contract = _contract()
    salt = os.urandom(32)
    sealed = {r: (e, c) for r, e, c in _sealed_outputs(value=value, salt=salt)}
    opened = open_output(
        name="richer",
        recipient="alice",
        enc=sealed["alice"][0],
        ciphertext=sealed["alice"][1],
        hpke_key=ALICE,
        session_id=SESSION,
        contract_digest=contract.digest,
    )
    return opened, salt


def _receipt(own, bob, opened, *, claims=None, signer=ENCLAVE_SIGNING, **overrides):
    contract = _contract()
    claims = claims or _claims()
    fields = dict(
        session_id=SESSION,
        contract_digest=contract.digest,
        claims_digest=claims.digest,
        inputs=[
            InputRecord("alice", own.commitment, own.ciphertext_sha256),
            InputRecord("bob", bob.commitment, bob.ciphertext_sha256),
        ],
        outputs=[OutputRecord("richer", ("alice", "bob"), opened.commitment)],
        completed_unix_ms=1,
    )
    fields.update(overrides)
    receipt = build_receipt(**fields)
    return receipt, sign_receipt(receipt, signer)


def _verify(receipt, signature, own, opened, claims=None):
    return verify_receipt(
        receipt,
        signature,
        claims=claims or _claims(),
        contract=_contract(),
        session_id=SESSION,
        own_input=own,
        party="alice",
        outputs=[opened],
    )


def test_receipt_verifies():
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    parsed = _verify(receipt, signature, own, opened)
    assert parsed.inputs[0].commitment == own.commitment
    assert "kv_cache" in parsed.erased


def test_receipt_signed_by_other_key_fail():
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened, signer=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match=r"receipt.signature"):
        _verify(receipt, signature, own, opened)


def test_receipt_altered_byte_fail():
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    altered = receipt.replace(b'"completed_unix_ms":1', b'"completed_unix_ms":2')
    with pytest.raises(SignatureError):
        _verify(altered, signature, own, opened)


def test_receipt_wrong_own_input_fail():
    # The enclave (or a re-encrypting host) used a different input for alice.
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    other = _seal(values={"first_wealth": 999})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(other, bob, opened)
    with pytest.raises(BindingError, match=r"receipt.inputs.commitment"):
        _verify(receipt, signature, own, opened)


def test_receipt_forged_output_fail():
    # A forged output (any value, fresh salt) sealed to alice does not match the signed receipt.
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    real, _ = _session_outputs("first")
    receipt, signature = _receipt(own, bob, real)
    forged, _ = _session_outputs("second")
    with pytest.raises(BindingError, match=r"receipt.outputs.richer.commitment"):
        _verify(receipt, signature, own, forged)


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ({"session_id": bytes(16)}, "receipt.session_id"),
        ({"contract_digest": bytes(32)}, "receipt.contract_digest"),
        ({"claims_digest": bytes(32)}, "receipt.claims_digest"),
    ],
)
def test_receipt_binding_fields_fail(override, check):
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened, **override)
    with pytest.raises(BindingError) as info:
        _verify(receipt, signature, own, opened)
    assert info.value.check == check


def test_receipt_missing_party_input_fail():
    own = _seal()
    opened, _ = _session_outputs()
    receipt, signature = _receipt(
        own, own, opened, inputs=[InputRecord("alice", own.commitment, own.ciphertext_sha256)]
    )
    with pytest.raises(BindingError, match=r"receipt.inputs.parties"):
        _verify(receipt, signature, own, opened)


def test_receipt_output_not_received_fail():
    own, bob = _seal(), _seal("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    with pytest.raises(BindingError, match=r"receipt.outputs.received"):
        verify_receipt(
            receipt,
            signature,
            claims=_claims(),
            contract=_contract(),
            session_id=SESSION,
            own_input=own,
            party="alice",
            outputs=[],
        )


# --- party keys ---------------------------------------------------------------------------


def test_party_keys_save_load(tmp_path):
    path = tmp_path / "alice.key"
    ALICE.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = PartyKeys.load(path)
    assert loaded.public_entry("alice") == ALICE.public_entry("alice")


def test_party_keys_load_garbage_fail(tmp_path):
    path = tmp_path / "bad.key"
    path.write_text('{"type": "something-else"}')
    with pytest.raises(ParseError, match=r"party_keys.type"):
        PartyKeys.load(path)
    with pytest.raises(UsageError):
        PartyKeys.load(tmp_path / "missing.key")
