"""Who may open a session: a signed, fresh, unreplayed proposal by a party of the contract.

Checks, in order (each rejection names its check):

1. ``create.proposer``: the proposer is a party of the contract (and, when the
   enclave is configured with an allow-list, its signing key is on it);
2. ``create.signature``: Ed25519 by the proposer's contract key over
   ``tcme.wire.requests.create_request_message``;
3. ``create.timestamp``: the proposer's clock is within ``window`` of ours;
4. ``create.timeout``: the requested timeout is 1..the contract's timeout;
5. ``create.replay``: this exact proposal was not accepted before within the
   window (remembered for twice the window, bounded in number).

Slots are counted per proposer key by ``enclave.session.SessionManager``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from attestation.errors import SignatureError, TcmeError, UsageError
from tcme.base.keys import ed25519_public
from tcme.contract.model import Contract
from tcme.wire import sha256
from tcme.wire.requests import (
    MAX_PROPOSAL_NONCE_SIZE,
    MIN_PROPOSAL_NONCE_SIZE,
    SessionProposal,
    create_request_message,
)

DEFAULT_WINDOW_SECONDS = 300.0
DEFAULT_MAX_REMEMBERED = 65536


class ProposalError(SignatureError):
    """A CreateSession request is not a fresh proposal signed by a party (PERMISSION_DENIED)."""


class Unauthenticated(TcmeError):
    """A CreateSession request carries no proposer signature at all (UNAUTHENTICATED)."""


class ReplayCacheFull(TcmeError):
    """Too many proposals accepted within the window to remember them all."""


@dataclass(frozen=True)
class Admitted:
    """A proposal that passed every check: who proposed, and for how long."""

    proposer: str
    proposer_key: bytes
    timeout_seconds: int
    # SHA-256 of the signed message: what ``remember`` keys replays on.
    replay_key: bytes


class Admission:
    """Verifies proposals and remembers the accepted ones for replay detection."""

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_remembered: int = DEFAULT_MAX_REMEMBERED,
        allowed_proposers: Collection[bytes] | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._max = max_remembered
        self._allowed = frozenset(allowed_proposers) if allowed_proposers is not None else None
        self._wall = wall_clock
        self._clock = clock
        self._seen: dict[bytes, float] = {}
        self._order: collections.deque[tuple[float, bytes]] = collections.deque()
        self._lock = threading.Lock()

    def check(self, contract: Contract, proposal: SessionProposal | None) -> Admitted:
        """Steps 1-4; raises ``Unauthenticated``, ``ProposalError`` or ``UsageError``."""
        if proposal is None or not proposal.proposer or not proposal.signature:
            raise Unauthenticated(
                "create.unauthenticated",
                "CreateSession must be signed by a party of the contract "
                "(proposer, nonce, timestamp_unix_ms, timeout_seconds, signature)",
            )
        # (1)
        party = next((p for p in contract.parties if p.name == proposal.proposer), None)
        if party is None:
            raise ProposalError(
                "create.proposer",
                "the proposer is not a party of this contract",
                expected=[p.name for p in contract.parties],
                actual=proposal.proposer[:64],
            )
        if self._allowed is not None and party.signing_key not in self._allowed:
            raise ProposalError(
                "create.proposer",
                "this enclave accepts proposals only from configured proposer keys",
                actual=party.signing_key.hex(),
            )
        if not MIN_PROPOSAL_NONCE_SIZE <= len(proposal.nonce) <= MAX_PROPOSAL_NONCE_SIZE:
            raise UsageError(
                "create.nonce",
                "nonce size out of range",
                expected=f"{MIN_PROPOSAL_NONCE_SIZE}..{MAX_PROPOSAL_NONCE_SIZE} bytes",
                actual=f"{len(proposal.nonce)} bytes",
            )
        # (2)
        message = create_request_message(
            contract.digest,
            proposal.proposer,
            proposal.nonce,
            proposal.timestamp_unix_ms,
            proposal.timeout_seconds,
        )
        try:
            ed25519_public(party.signing_key, "contract.signing_key").verify(
                proposal.signature, message
            )
        except InvalidSignature as err:
            raise ProposalError(
                "create.signature",
                f"proposal not signed by the contract key of party {party.name!r}",
            ) from err
        # (3)
        skew = proposal.timestamp_unix_ms / 1000 - self._wall()
        if abs(skew) > self._window:
            raise ProposalError(
                "create.timestamp",
                "the proposal's timestamp is outside the enclave's freshness window",
                expected=f"within {int(self._window)} s of the enclave clock",
                actual=f"{int(skew)} s off",
            )
        # (4)
        if not 1 <= proposal.timeout_seconds <= contract.timeout_seconds:
            raise UsageError(
                "create.timeout",
                "requested timeout out of range",
                expected=f"1..{contract.timeout_seconds} (the contract's timeout_seconds)",
                actual=proposal.timeout_seconds,
            )
        return Admitted(party.name, party.signing_key, proposal.timeout_seconds, sha256(message))

    def remember(self, admitted: Admitted) -> None:
        """Step 5: refuse a proposal seen before; remember this one for twice the window.

        Raises ``ProposalError`` (``create.replay``) or ``ReplayCacheFull``.
        """
        key = admitted.replay_key
        now = self._clock()
        with self._lock:
            while self._order and self._order[0][0] <= now:
                _, old = self._order.popleft()
                self._seen.pop(old, None)
            if key in self._seen:
                raise ProposalError(
                    "create.replay", "this signed proposal was already used to open a session"
                )
            if len(self._seen) >= self._max:
                raise ReplayCacheFull(
                    "create.replay_capacity",
                    "too many sessions proposed within the freshness window",
                    expected=f"< {self._max}",
                    actual=len(self._seen),
                )
            expiry = now + 2 * self._window
            self._seen[key] = expiry
            self._order.append((expiry, key))
