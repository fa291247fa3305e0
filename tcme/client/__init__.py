"""Party-side client library.

Typical use (see docs/usage.md)::

    from tcme.client import Party, PartyPolicy, TcmeClient
    from tcme.wire import PartyKeys

    with TcmeClient("127.0.0.1:7100") as client:
        party = Party("alice", PartyKeys.load("alice.key"), PartyPolicy.load("alice.toml"), client)
        attestation, result = party.run(session_id, {"alice_wealth": 12})
        print(attestation.summary(), result.outputs)

Every public call verifies before it trusts: enclave keys come only from an
``AttestationResult``; outputs count only after the signed receipt verifies.
"""

from tcme.client.client import (
    Party,
    PartyResult,
    SessionInfo,
    SessionStatus,
    SubmittedInput,
    TcmeClient,
)
from tcme.client.errors import RemoteError, UnreachableRemoteError
from tcme.client.policy import ContractExpectation, ModelExpectation, PartyPolicy
from tcme.client.verify import AttestationResult, verify_attestation

__all__ = [
    "AttestationResult",
    "ContractExpectation",
    "ModelExpectation",
    "Party",
    "PartyPolicy",
    "PartyResult",
    "RemoteError",
    "SessionInfo",
    "SessionStatus",
    "SubmittedInput",
    "TcmeClient",
    "UnreachableRemoteError",
    "verify_attestation",
]
