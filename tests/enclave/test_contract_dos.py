"""Contracts and party values cannot stop the enclave: catastrophic patterns, deep nesting.

The attacks come over real gRPC from a stranger (CreateSession is open) and
from a co-party that skips its library's checks (SubmitInput). Python's
backtracking ``re`` would hold the GIL for hours on ``(a|aa)+`` against ninety
``a`` and a ``b``; RE2 answers at once. A watchdog (faulthandler, which needs no
GIL) ends the test process if a regression ever hangs it, so the suite fails
instead of waiting forever.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from attestation.policy import simulated_policy
from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.base.encoding import canonical_json, lp_join
from tcme.base.keys import hpke_seal
from tcme.client import PartyPolicy, RemoteError, TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import canonical_contract, parse_contract
from tcme.wire.envelope import input_info, input_signing_message

EVIL = "(a|aa)+"
ATTACK = "a" * 90 + "b"
WATCHDOG_SECONDS = 300  # a hang fails the run; the honest test takes seconds


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "33" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract: Any, values: Any) -> Any:
    raise AssertionError("the model ran although an input was invalid")


@pytest.fixture(scope="module")
def stack(sim_provider):
    enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run)
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    yield f"127.0.0.1:{port}"
    shutdown(server, enclave, grace=0)


def _contract(parties: dict[str, Any]) -> bytes:
    return canonical_contract(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [parties[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [
                {"party": "alice", "name": "word", "type": "string", "max_len": 100,
                 "pattern": EVIL, "may_flow_to": ["bob"]},
                {"party": "bob", "name": "doc", "type": "json", "max_bytes": 400,
                 "may_flow_to": ["alice"], "schema": {
                     "type": "object",
                     "properties": {"w": {"type": "string", "pattern": f"^{EVIL}$"}},
                     "patternProperties": {f"^{EVIL}$": {"type": "integer"}},
                     "additionalProperties": False,
                 }},
            ],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 4},
            "outputs": [
                {"name": "same", "type": "enum", "values": ["yes", "no"],
                 "prompt": "Is {word} like {doc}?", "recipients": ["alice", "bob"]},
            ],
            "timeout_seconds": 60,
        }
    )  # fmt: skip


def _policy(sim_provider, digest: bytes) -> PartyPolicy:
    return PartyPolicy.from_dict(
        {
            **simulated_policy(sim_provider.ark_sha256, sim_provider.measurement),
            "model": {"root_digest": _Identity.root_digest, "signer": _Identity.signer},
            "contract": {"digest": digest.hex()},
        }
    )


def _seal_unchecked(attestation, party: str, values: dict[str, Any], keys) -> tuple[bytes, bytes]:
    """Seal like tcme.wire.seal_input without its local value check (a hostile co-party)."""
    payload = canonical_json(
        {
            "type": "tcme/v1/input",
            "session_id": attestation.session_id.hex(),
            "contract_digest": attestation.contract.digest.hex(),
            "party": party,
            "salt": os.urandom(32).hex(),
            "values": values,
        }
    )
    signature = keys.signing_key.sign(input_signing_message(payload))
    return hpke_seal(
        attestation.claims.hpke_public_key,
        lp_join(payload, signature),
        input_info(attestation.session_id, attestation.contract.digest, party),
    )


def _submit_raw(client: TcmeClient, attestation, party: str, values, keys) -> None:
    enc, ciphertext = _seal_unchecked(attestation, party, values, keys)
    client._call(
        "SubmitInput",
        tcme_pb2.SubmitInputRequest(
            session_id=attestation.session_id, party=party, enc=enc, ciphertext=ciphertext
        ),
    )


@pytest.mark.parametrize(
    ("party", "values", "check"),
    [
        ("alice", {"word": ATTACK}, "input.alice.word"),
        ("bob", {"doc": {"w": ATTACK}}, "input.bob.doc"),
        ("bob", {"doc": {ATTACK: 1}}, "input.bob.doc"),
    ],
)
def test_catastrophic_party_value_is_refused_at_once_attack(
    stack, sim_provider, parties, party, values, check
):
    raw = _contract(parties)
    policy = _policy(sim_provider, parse_contract(raw).digest)
    with TcmeClient(stack, timeout=60) as client:
        session_id = client.create_session(raw).session_id
        view = client.attest(policy, session_id)
        with pytest.raises(RemoteError) as err:
            _submit_raw(client, view, party, values, parties[party])
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.check == check
        assert ATTACK not in err.value.message()
        # The enclave still answers everyone: a fresh session opens and attests.
        fresh = client.create_session(raw).session_id
        assert client.attest(policy, fresh).session_id == fresh


def test_matching_party_values_are_accepted(stack, sim_provider, parties):
    raw = _contract(parties)
    policy = _policy(sim_provider, parse_contract(raw).digest)
    with TcmeClient(stack, timeout=60) as client:
        session_id = client.create_session(raw).session_id
        view = client.attest(policy, session_id)
        accepted = client.submit_input(view, "alice", parties["alice"], {"word": "a" * 90})
        assert (accepted.inputs_received, accepted.inputs_expected) == (1, 2)


def test_deeply_nested_contract_is_invalid_argument_attack(stack, parties):
    deep = b'{"kind":"general","parties":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with TcmeClient(stack, timeout=60) as client:
        with pytest.raises(RemoteError) as err:
            client.create_session(deep)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.check == "contract.depth"
        # ... and the enclave keeps serving.
        assert client.create_session(_contract(parties)).session_id


# --- capability tests stop at the contract's token budget ----------------------------------


def _budget_contract(parties: dict[str, Any], budget: int) -> bytes:
    return canonical_contract(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [parties[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [{"party": "alice", "name": "thing", "type": "string", "max_len": 20}],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 48},
            "outputs": [
                {
                    "name": "story",
                    "type": "grammar",
                    "grammar": "root ::= [a-z ]{1,200}",
                    "max_chars": 200,
                    "prompt": "Tell a long story about a {thing}.",
                    "recipients": ["alice"],
                }
            ],
            # 32 tests x 48 tokens would hold the model for minutes on a slow host.
            "capability_tests": [
                {"inputs": {"thing": f"cat {index}"}, "expected": {"story": "a cat"}}
                for index in range(32)
            ],
            "capability_token_budget": budget,
        }
    )


@pytest.mark.model
def test_capability_tests_stop_at_the_token_budget_attack(sim_provider, parties, loaded_model):
    from enclave.inference import Inference

    inference = Inference(loaded_model.llama)
    calls: list[int] = []

    def counting(contract: Any, values: Any) -> Any:
        calls.append(1)
        return inference.run(contract, values)

    enclave = Enclave(provider=sim_provider, model=loaded_model.identity, runner=counting)
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    try:
        with TcmeClient(f"127.0.0.1:{port}", timeout=120) as client:
            with pytest.raises(RemoteError) as err:
                client.create_session(_budget_contract(parties, 120))
            assert err.value.check == "capability.budget"
            assert err.value.expected == "<= 120 tokens"
            # Stopped at the budget: a few calls, not the 32 the tests ask for.
            assert 1 <= len(calls) <= 3
    finally:
        shutdown(server, enclave, grace=0)


def test_token_budget_grants_what_is_left_and_stops_when_spent():
    from tcme.contract.capability import TokenBudget, TokenBudgetError

    budget = TokenBudget(100)
    assert budget.grant(48) == 48
    budget.charge(30, 48, granted=48, wanted=48)  # 78 spent
    assert budget.grant(48) == 22  # the call shrinks to what is left
    with pytest.raises(TokenBudgetError) as err:
        budget.charge(10, 22, granted=22, wanted=48)  # the budget cut it short
    assert err.value.check == "capability.budget"
    spent = TokenBudget(50)
    spent.charge(50, 0, granted=10, wanted=10)
    with pytest.raises(TokenBudgetError):
        spent.grant(1)
    over = TokenBudget(50)
    with pytest.raises(TokenBudgetError):
        over.charge(60, 1, granted=10, wanted=10)  # a prompt alone can overshoot, once
