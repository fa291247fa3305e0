"""An output's constraint failure reveals nothing to a non-recipient (issue 11, part 3).

The attack from the issue, with the real default model behind the real host
proxy and a recording proxy in front: a contract that passes the flow check
sends one JSON output to alice only; its schema has ``maximum``, which
llama.cpp's schema-to-grammar conversion does not enforce, so the model's
output breaks it after generation, and the failure's JSON Schema path holds
the key the model wrote: alice's secret word. Bob (not a recipient) and the
proxy see only "output.invalid"; alice reads the detail, sealed to her key and
committed in the enclave-signed failure receipt.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from attestation.errors import TcmeError
from tcme.client import Party, RemoteError, TcmeClient
from tcme.wire import canonical_contract

pytestmark = pytest.mark.model

SECRET = "quokka"


def _contract(party_keys) -> bytes:
    return canonical_contract(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [party_keys[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [
                {
                    "party": "alice",
                    "name": "word",
                    "type": "string",
                    "max_len": 16,
                    "pattern": "[a-z]+",
                }
            ],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 24},
            "outputs": [
                {
                    "name": "report",
                    "type": "json",
                    "max_chars": 200,
                    # The grammar keeps the shape (string keys, integer values); it cannot
                    # keep "maximum": that is checked after generation.
                    "schema": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "maximum": 10},
                    },
                    "prompt": "Reply with exactly this JSON object and nothing else: "
                    '{{"{word}": 500}}',
                    "recipients": ["alice"],
                }
            ],
        }
    )


def test_output_constraint_detail_reaches_recipients_only_attack(
    model_stack, policy_for, party_keys, hostile_factory
):
    contract = _contract(party_keys)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
    policy = policy_for(model_stack, contract)
    hostile = hostile_factory(model_stack)
    values = {"alice": {"word": SECRET}, "bob": {}}

    def run(name):
        with TcmeClient(hostile.target, timeout=300) as client:
            try:
                Party(name, party_keys[name], policy, client).run(
                    session_id, values[name], timeout=300
                )
            except TcmeError as err:
                return err
        return None

    with ThreadPoolExecutor(2) as pool:
        alice, bob = pool.map(run, ("alice", "bob"))

    assert isinstance(bob, RemoteError) and isinstance(alice, RemoteError)
    # Bob: the fixed public reason, verified against the signed failure receipt.
    assert bob.check == "output.invalid" and bob.disclosure == "public"
    assert SECRET not in bob.message() and bob.expected is None and bob.actual is None
    # Alice, the output's recipient, reads why (her own word is in the schema path).
    assert alice.disclosure == "sealed" and alice.failure_reason == "output.invalid"
    assert alice.check == "output.constraint"
    assert f"/{SECRET}: maximum" in alice.detail
    # Nothing that crossed the proxy, either way, carries the secret in the clear.
    assert not any(SECRET.encode() in data for data in hostile.seen)
