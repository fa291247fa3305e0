"""General contracts through the enclave over real gRPC: constraints, recipients, flow, capability.

Parties use the real party library (tcme.client) against the enclave's socket;
evidence comes from the simulated SEV-SNP provider (the hardware stand-in) and
is verified by the real verifier. Tests that need outputs run the real
default model.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from attestation.errors import PolicyError, TcmeError
from attestation.policy import simulated_policy
from enclave.inference import Inference
from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.base.encoding import canonical_json, lp_join
from tcme.base.keys import hpke_seal
from tcme.client import Party, PartyPolicy, RemoteError, TcmeClient
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import (
    OutputError,
    canonical_contract,
    open_output,
    parse_contract,
    seal_output,
    sign_result_request,
)
from tcme.wire.envelope import input_info, input_signing_message

CANARY = "CANARYqxzv"
TIMEOUT = 60


@dataclass(frozen=True)
class _Identity:
    """Model identity for the enclave whose runner must never be called."""

    root_digest: str = "22" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


class _Recorder:
    """A runner that records being called: the model must not see invalid inputs."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, contract: Any, values: Any) -> Any:
        self.calls += 1
        raise AssertionError("the model ran although an input was invalid")


def _contract_dict(parties: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "tcme/v1/contract",
        "kind": "general",
        "parties": [parties[n].public_entry(n) for n in ("alice", "bob", "carol")],
        "inputs": [
            {
                "party": "alice",
                "name": "secret",
                "type": "string",
                "max_len": 24,
                "max_bytes": 24,
                "pattern": "[A-Za-z ]*",
            },
            {"party": "alice", "name": "ratio", "type": "number", "min": "0", "max": "1"},
            {
                "party": "bob",
                "name": "doc",
                "type": "json",
                "max_bytes": 60,
                "may_flow_to": ["alice", "carol"],
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "maximum": 9}},
                    "required": ["n"],
                    "additionalProperties": False,
                },
            },
            {
                "party": "bob",
                "name": "colour",
                "type": "enum",
                "values": ["red", "blue"],
                "may_flow_to": ["alice", "carol"],
            },
        ],
        "decoding": {"temperature": 0, "seed": 9, "max_tokens": 6},
        "outputs": [
            {
                "name": "topic",
                "type": "enum",
                "values": ["animal", "thing"],
                "prompt": "Is '{secret}' an animal or a thing? Answer animal or thing.",
                "recipients": [],
            },
            {
                "name": "verdict",
                "type": "enum",
                "values": ["yes", "no"],
                "prompt": "A {topic} with ratio {ratio}, {doc} and colour {colour}: is it good? "
                "Answer yes or no.",
                "recipients": ["alice", "bob", "carol"],
                "declassify": {"secret": ["bob", "carol"], "ratio": ["bob", "carol"]},
            },
            {
                "name": "reason",
                "type": "grammar",
                "grammar": "root ::= [A-Za-z ]{1,40}",
                "max_chars": 40,
                "max_tokens": 24,
                "prompt": "Say why '{secret}' is a {topic} in a few words.",
                "recipients": ["alice"],
            },
        ],
        "timeout_seconds": 60,
    }
    body.update(changes)
    return body


GOOD = {
    "alice": {"secret": "a small grey cat", "ratio": "0.5"},
    "bob": {"doc": {"n": 3}, "colour": "red"},
    "carol": {},
}


def _serve(enclave: Enclave) -> tuple[grpc.Server, str]:
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def recorder_stack(sim_provider):
    recorder = _Recorder()
    enclave = Enclave(
        provider=sim_provider, model=_Identity(), runner=recorder, retention_seconds=30
    )
    server, target = _serve(enclave)
    yield enclave, target, recorder
    shutdown(server, enclave, grace=0)


@pytest.fixture(scope="module")
def model_stack(sim_provider, loaded_model):
    enclave = Enclave(
        provider=sim_provider,
        model=loaded_model.identity,
        runner=Inference(loaded_model.llama).run,
        retention_seconds=30,
    )
    server, target = _serve(enclave)
    yield enclave, target, loaded_model.identity
    shutdown(server, enclave, grace=0)


def _policy(sim_provider, identity, digest: bytes, **contract: Any) -> PartyPolicy:
    return PartyPolicy.from_dict(
        {
            **simulated_policy(sim_provider.ark_sha256, sim_provider.measurement),
            "model": {"root_digest": identity.root_digest, "signer": identity.signer},
            "contract": {"digest": digest.hex(), **contract},
        }
    )


def _seal_unchecked(attestation, party: str, values: dict[str, Any], keys) -> tuple[bytes, bytes]:
    """Seal like tcme.wire.seal_input but without its local value check: a party that
    skips the library's check must still be stopped by the enclave."""
    contract = attestation.contract
    payload = canonical_json(
        {
            "type": "tcme/v1/input",
            "session_id": attestation.session_id.hex(),
            "contract_digest": contract.digest.hex(),
            "party": party,
            "salt": os.urandom(32).hex(),
            "values": values,
        }
    )
    signature = keys.signing_key.sign(input_signing_message(payload))
    return hpke_seal(
        attestation.claims.hpke_public_key,
        lp_join(payload, signature),
        input_info(attestation.session_id, contract.digest, party),
    )


# --- constraints are enforced before the model sees anything ------------------------------

VIOLATIONS = [
    ("alice", {"secret": CANARY + "!", "ratio": "0.5"}, "input.alice.secret"),  # pattern
    ("alice", {"secret": CANARY * 3, "ratio": "0.5"}, "input.alice.secret"),  # max_len
    ("alice", {"secret": "é" * 13, "ratio": "0.5"}, "input.alice.secret"),  # max_bytes
    ("alice", {"secret": CANARY, "ratio": "1.5"}, "input.alice.ratio"),  # number range
    ("alice", {"secret": CANARY, "ratio": 0}, "input.alice.ratio"),  # number type
    ("bob", {"doc": {"n": 10}, "colour": "red"}, "input.bob.doc"),  # JSON Schema
    ("bob", {"doc": {"n": 1, "x": CANARY}, "colour": "red"}, "input.bob.doc"),  # JSON Schema
    ("bob", {"doc": {"n": 1}, "colour": CANARY}, "input.bob.colour"),  # enum
    ("bob", {"doc": {"n": 1}}, "input.bob.names"),  # missing input
    ("carol", {"extra": CANARY}, "input.carol.names"),  # a party without inputs sends some
]


@pytest.mark.parametrize(("bad_party", "values", "check"), VIOLATIONS)
def test_constraint_violation_ends_the_session_for_everyone_fail(
    recorder_stack, sim_provider, parties, bad_party, values, check
):
    _enclave, target, recorder = recorder_stack
    raw = canonical_contract(_contract_dict(parties))
    policy = _policy(sim_provider, _Identity(), parse_contract(raw).digest)
    with TcmeClient(target, timeout=TIMEOUT) as client:
        session = client.create_session(raw, proposer="alice", keys=parties["alice"])
        sid = session.session_id
        views = {name: client.attest(policy, sid) for name in ("alice", "bob", "carol")}
        # A valid input goes in first, so an honest party is inside the session too.
        honest = "carol" if bad_party != "carol" else "alice"
        client.submit_input(views[honest], honest, parties[honest], GOOD[honest])
        # The library itself refuses to seal the bad values (same check name)...
        with pytest.raises(TcmeError) as local:
            client.submit_input(views[bad_party], bad_party, parties[bad_party], values)
        assert local.value.check == check
        # ...and the enclave refuses them when a party skips that check.
        enc, ciphertext = _seal_unchecked(views[bad_party], bad_party, values, parties[bad_party])
        with pytest.raises(RemoteError) as first:
            client._call(
                "SubmitInput",
                tcme_pb2.SubmitInputRequest(
                    session_id=sid, party=bad_party, enc=enc, ciphertext=ciphertext
                ),
            )
        # What the proxy carries: a fixed reason, nothing about the value.
        assert first.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert first.value.check == "input.invalid"
        # Every party, whatever it asks next, gets that one public error, and no output;
        # the party that sent the input also reads which check it broke (sealed to it).
        seen = [first.value]
        for name in ("alice", "bob", "carol"):
            with pytest.raises(RemoteError) as later:
                client.get_result(views[name], name, parties[name], None, timeout=10)
            seen.append(later.value)
            if name == bad_party:
                assert later.value.disclosure == "sealed" and later.value.check == check
            else:
                assert later.value.disclosure == "public"
                assert later.value.message() == first.value.message()
        assert {e.code for e in seen} == {grpc.StatusCode.INVALID_ARGUMENT}
        assert all(CANARY not in e.message() and "é" not in e.message() for e in seen)
    assert recorder.calls == 0


def test_leaking_contract_is_refused_at_create_session_fail(recorder_stack, parties):
    _enclave, target, recorder = recorder_stack
    body = _contract_dict(parties)
    body["outputs"][2]["recipients"] = ["alice", "carol"]  # reason: Alice's secret to Carol
    # canonical_contract would refuse it; a proposer can still send such bytes.
    raw = canonical_json(body)
    # The party client would refuse to sign it; the enclave checks the contract first.
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
        tcme_pb2_grpc.TcmeStub(channel).CreateSession(
            tcme_pb2.CreateSessionRequest(contract=raw), timeout=TIMEOUT
        )
    remote = RemoteError.from_rpc(caught.value, "CreateSession")
    assert remote.code == grpc.StatusCode.INVALID_ARGUMENT
    assert remote.check == "contract.flow"
    assert "output 'reason' derived from alice.secret may not reach carol" in remote.detail
    assert recorder.calls == 0


# --- outputs reach their recipients only -----------------------------------------------------


def _run_parties(target, policies, parties, sid, values):
    with TcmeClient(target, timeout=TIMEOUT) as client, ThreadPoolExecutor(3) as pool:
        futures = {
            name: pool.submit(
                Party(name, parties[name], policies[name], client).run, sid, values[name]
            )
            for name in values
        }
        return {name: f.result(timeout=120) for name, f in futures.items()}


@pytest.mark.model
def test_outputs_reach_exactly_their_recipients(model_stack, sim_provider, parties):
    enclave, target, identity = model_stack
    raw = canonical_contract(_contract_dict(parties))
    contract = parse_contract(raw)
    policy = _policy(sim_provider, identity, contract.digest)
    with TcmeClient(target, timeout=TIMEOUT) as client:
        sid = client.create_session(raw, proposer="alice", keys=parties["alice"]).session_id
    captured: dict[str, Any] = {}
    original = enclave.sessions.collect

    def spy(session_id, party, signature, *, timeout):
        result = original(session_id, party, signature, timeout=timeout)
        captured[party] = result
        return result

    enclave.sessions.collect = spy
    try:
        results = _run_parties(target, dict.fromkeys(GOOD, policy), parties, sid, GOOD)
    finally:
        enclave.sessions.collect = original
    got = {name: set(result.outputs) for name, (_att, result) in results.items()}
    assert got == {"alice": {"verdict", "reason"}, "bob": {"verdict"}, "carol": {"verdict"}}
    reason = results["alice"][1].outputs["reason"]
    assert 1 <= len(reason) <= 40 and all(c.isalpha() or c == " " for c in reason)
    # The internal output was never sealed to anyone; every ciphertext names its recipient.
    for party, result in captured.items():
        assert all(o.recipient == party and o.name != "topic" for o in result.outputs)
    receipt = results["bob"][1].receipt
    assert [(o.name, o.recipients) for o in receipt.outputs] == [
        ("topic", ()),
        ("verdict", ("alice", "bob", "carol")),
        ("reason", ("alice",)),
    ]
    assert receipt.stateless == (
        "model_context_reset",
        "kv_cache_cleared",
        "no_file_written",
        "no_value_logged",
    )
    # Bob holding Alice's ciphertext cannot open it, under either recipient label.
    alice_reason = next(o for o in captured["alice"].outputs if o.name == "reason")
    for label in ("alice", "bob"):
        with pytest.raises(OutputError, match=r"output\.decrypt"):
            open_output(
                name="reason",
                recipient=label,
                enc=alice_reason.enc,
                ciphertext=alice_reason.ciphertext,
                hpke_key=parties["bob"],
                session_id=sid,
                contract_digest=contract.digest,
            )
    # By construction: sealing yields the contract's recipients and nobody else.
    assert [
        r
        for r, _e, _c in seal_output(
            contract=contract, session_id=sid, name="reason", value="x", salt=bytes(32)
        )
    ] == ["alice"]
    assert (
        seal_output(contract=contract, session_id=sid, name="topic", value="x", salt=bytes(32))
        == []
    )


@pytest.mark.model
def test_a_party_cannot_collect_another_partys_outputs_fail(model_stack, sim_provider, parties):
    _enclave, target, identity = model_stack
    body = _contract_dict(parties)
    raw = canonical_contract(body)
    policy = _policy(sim_provider, identity, parse_contract(raw).digest)
    with TcmeClient(target, timeout=TIMEOUT) as client:
        sid = client.create_session(raw, proposer="alice", keys=parties["alice"]).session_id
        views = {n: client.attest(policy, sid) for n in GOOD}
        for name, values in GOOD.items():
            client.submit_input(views[name], name, parties[name], values)
        stub = client._stub
        # Bob asks for Alice's share with his own key: refused.
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetResult(
                tcme_pb2.GetResultRequest(
                    session_id=sid,
                    party="alice",
                    signature=sign_result_request(sid, "alice", parties["bob"]),
                ),
                timeout=TIMEOUT,
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Someone not in the contract gets nothing either.
        outsider = type(parties["bob"]).generate()
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetResult(
                tcme_pb2.GetResultRequest(
                    session_id=sid,
                    party="mallory",
                    signature=sign_result_request(sid, "mallory", outsider),
                ),
                timeout=TIMEOUT,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for name in GOOD:
            client.get_result(views[name], name, parties[name], None, timeout=120)


# --- capability tests at CreateSession ------------------------------------------------------


def _with_tests(parties: dict[str, Any], min_score: int) -> bytes:
    body = _contract_dict(parties)
    good = {**GOOD["alice"], **GOOD["bob"]}
    # The same public inputs expected to give "yes" and "no": whatever the model says,
    # exactly one of the two passes, so the score is 1/2 for any model.
    body["capability_tests"] = [
        {"inputs": copy.deepcopy(good), "expected": {"verdict": "yes"}},
        {"inputs": copy.deepcopy(good), "expected": {"verdict": "no"}},
    ]
    body["min_score_percent"] = min_score
    body["capability_token_budget"] = 2048
    return canonical_contract(body)


@pytest.mark.model
def test_capability_score_is_attested_and_in_the_receipt(model_stack, sim_provider, parties):
    _enclave, target, identity = model_stack
    with TcmeClient(target, timeout=TIMEOUT) as client, pytest.raises(RemoteError) as refused:
        client.create_session(_with_tests(parties, 100), proposer="alice", keys=parties["alice"])
    assert refused.value.check == "capability.score"
    assert refused.value.actual == "1/2"

    raw = _with_tests(parties, 50)
    digest = parse_contract(raw).digest
    with TcmeClient(target, timeout=TIMEOUT) as client:
        sid = client.create_session(raw, proposer="alice", keys=parties["alice"]).session_id
        # A party whose policy wants 0.9 refuses before it releases anything.
        strict = _policy(sim_provider, identity, digest, min_capability_score=0.9)
        with pytest.raises(PolicyError) as caught:
            client.attest(strict, sid)
        assert caught.value.check == "capability.score"
        # The record is covered by the evidence: an altered record fails verification.
        relaxed = _policy(sim_provider, identity, digest, min_capability_score=0.5)
        attestation = client.attest(relaxed, sid)
        record = attestation.capability
        assert (record.passed, record.total) == (1, 2)
        assert record.session_id == sid and record.contract_digest == digest
        # The party summary shows what the tests were allowed to cost.
        assert attestation.summary()["capability_token_budget"] == 2048
        response = client._stub.Attest(
            tcme_pb2.AttestRequest(session_id=sid, nonce=os.urandom(32)), timeout=TIMEOUT
        )
        forged = response.capability.replace(b'"passed":false', b'"passed":true', 1).replace(
            b'"passed":1', b'"passed":2', 1
        )
        assert forged != response.capability
        from tcme.client import verify_attestation

        tampered = tcme_pb2.AttestResponse()
        tampered.CopyFrom(response)
        tampered.capability = forged
        with pytest.raises(TcmeError) as broken:
            verify_attestation(tampered, policy=relaxed, session_id=sid, nonce=os.urandom(32))
        assert "report_data" in broken.value.check or "capability" in broken.value.check
    policies = dict.fromkeys(GOOD, relaxed)
    results = _run_parties(target, policies, parties, sid, GOOD)
    for _attestation, result in results.values():
        assert result.receipt.capability == record.summary()
