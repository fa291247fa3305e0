"""The enclave as one object: keys, claims, evidence provider and sessions.

Everything the gRPC servicer calls lives here, free of gRPC, so tests and the
servicer share one code path.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Protocol

from attestation.binding import MAX_NONCE_SIZE, MIN_NONCE_SIZE, report_data_for
from attestation.errors import TcmeError, UsageError
from attestation.nvidia.binding import gpu_nonce_for
from attestation.providers.base import Evidence, EvidenceProvider
from attestation.providers.nvidia_gpu import GpuEvidenceProvider
from enclave.admission import Admission
from enclave.keys import EnclaveKeys
from enclave.session import Runner, SessionManager
from tcme import __version__
from tcme.base.encoding import sha256
from tcme.wire.claims import build_claims, with_gpu_evidence

log = logging.getLogger(__name__)

RUNTIME_VERSION = f"tcme {__version__}"
# Bytes of the per-process route tag that starts every session id (enclave/fleet.py).
ROUTE_SIZE = 4


class EnclaveDraining(TcmeError):
    """The enclave is shutting down: it finishes its sessions but opens no new one."""


class ModelIdentityLike(Protocol):
    """What the claims need from ``tcme.model.ModelIdentity`` (read-only: a frozen
    dataclass satisfies it)."""

    @property
    def root_digest(self) -> str:
        """The signed model's root digest."""
        ...

    @property
    def signer(self) -> str:
        """Who signed the model."""
        ...

    @property
    def issuer(self) -> str | None:
        """The signer's OIDC issuer (keyless signatures), else None."""
        ...

    @property
    def method(self) -> str:
        """The signing method."""
        ...

    @property
    def hash_algorithm(self) -> str:
        """The hash of the model's manifest."""
        ...


@dataclass(frozen=True)
class Attestation:
    """What ``Enclave.attest`` returns: evidence plus the exact bytes it binds."""

    evidence: Evidence
    claims: bytes
    contract: bytes
    session_id: bytes
    # The session's capability record (empty without capability tests).
    capability: bytes = b""


class Enclave:
    """Keys made here, in memory only; claims built once; sessions on top."""

    def __init__(
        self,
        *,
        provider: EvidenceProvider,
        model: ModelIdentityLike,
        runner: Runner,
        keys: EnclaveKeys | None = None,
        max_sessions: int = 64,
        max_sessions_per_proposer: int = 8,
        retention_seconds: float = 300.0,
        admission: Admission | None = None,
        route: bytes | None = None,
        gpu_provider: GpuEvidenceProvider | None = None,
    ) -> None:
        self.provider = provider
        self.gpu_provider = gpu_provider
        # A fresh random tag per process: a restarted enclave is a new route, so a proxy
        # can never send an old session's calls to the process that replaced it.
        self.route = os.urandom(ROUTE_SIZE) if route is None else bytes(route)
        self._draining = threading.Event()
        self.keys = keys or EnclaveKeys.generate()
        self.claims = build_claims(
            runtime=RUNTIME_VERSION,
            tee=provider.tee,
            model_root_digest=model.root_digest,
            model_hash_algorithm=model.hash_algorithm,
            model_signer=model.signer,
            model_issuer=model.issuer,
            model_method=model.method,
            hpke_public_key=self.keys.hpke_public,
            signing_public_key=self.keys.signing_public,
        )
        # The identity claims: what sessions and receipts name. Attestations with GPUs
        # add the GPUs' evidence to a per-attestation copy (tcme.wire.claims).
        self.claims_digest = sha256(self.claims)
        self.sessions = SessionManager(
            keys=self.keys,
            claims_digest=self.claims_digest,
            runner=runner,
            max_sessions=max_sessions,
            max_sessions_per_proposer=max_sessions_per_proposer,
            retention_seconds=retention_seconds,
            admission=admission,
            route=self.route,
        )
        if provider.simulated:
            log.warning(
                "SIMULATED enclave: evidence comes from %s and proves nothing about hardware; "
                "parties accept it only with allow_simulated in their policy",
                provider.name,
            )

    def attest(self, session_id: bytes, nonce: bytes) -> Attestation:
        """Fresh evidence binding claims, the session's contract, the session id and ``nonce``.

        An empty ``session_id`` attests the enclave alone (contract = empty bytes).
        A session with capability tests also binds its capability record's digest.
        """
        if not MIN_NONCE_SIZE <= len(nonce) <= MAX_NONCE_SIZE:
            raise UsageError(
                "attest.nonce",
                "nonce size out of range",
                expected=f"{MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes",
                actual=f"{len(nonce)} bytes",
            )
        session = self.sessions.get(session_id) if session_id else None
        contract = session.contract.raw if session is not None else b""
        record = session.capability if session is not None else None
        capability_digest = record.digest if record is not None else None
        claims = self.claims
        if self.gpu_provider is not None:
            # Each GPU signs a nonce derived from this very binding (docs/protocol.md), and
            # its evidence goes into the claims that REPORT_DATA binds.
            gpu_nonce = gpu_nonce_for(
                self.claims_digest, sha256(contract), session_id, nonce, capability_digest
            )
            devices = self.gpu_provider.gpu_evidence(gpu_nonce)
            claims = with_gpu_evidence(
                self.claims,
                self.gpu_provider.mode(),
                [(d.report, d.certs, d.digest) for d in devices],
            )
        report_data = report_data_for(
            sha256(claims), sha256(contract), session_id, nonce, capability_digest
        )
        evidence = self.provider.get_evidence(report_data)
        return Attestation(
            evidence=evidence,
            claims=claims,
            contract=contract,
            session_id=session_id,
            capability=record.raw if record is not None else b"",
        )

    @property
    def draining(self) -> bool:
        """True once ``start_draining`` ran: no new sessions."""
        return self._draining.is_set()

    def start_draining(self) -> None:
        """Refuse new sessions from now on; the live ones continue."""
        self._draining.set()

    def check_accepting(self) -> None:
        """Raise ``EnclaveDraining`` when this enclave takes no new sessions."""
        if self._draining.is_set():
            raise EnclaveDraining(
                "enclave.draining",
                "this enclave is shutting down and takes no new sessions; "
                "create the session again (the proxy sends it to another enclave)",
            )

    def close(self) -> None:
        """Drop every session."""
        self.sessions.close()
