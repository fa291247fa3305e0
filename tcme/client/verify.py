"""Verify one Attest response under a party's policy: the only source of enclave keys.

Steps (tagged in the code):

  (1) the response answers this request (same session id);
  (2) parse the claims and the contract (pure, bounds-checked);
  (3) recompute REPORT_DATA from H(claims), H(contract), session id and the
      party's own nonce;
  (4) verify the evidence: a kind the policy accepts, parse, signatures and
      chain to the party's pinned roots, policy (TCB, measurement, debug,
      simulated only if allowed, the party's own CRL if required), and
      REPORT_DATA equal to (3);
  (5) the claims' TEE is the TEE that produced the evidence;
  (6) the model root digest and signer are the ones the policy names;
  (7) the contract is the one the party agreed to (checked first, on the raw
      bytes' digest, before (2) parses them);
  (8) when the contract has capability tests: the attested score meets the
      policy's ``[contract] min_capability_score`` (tcme.contract.check_capability);
  (9) GPUs (evidence kind ``nvidia-gpu``): every device's evidence in the claims
      verifies over the nonce derived from this binding, as one system, and the
      ``[gpu]`` policy accepts it (tcme.client.gpu). Claims with GPU evidence are
      refused unless the policy accepts ``nvidia-gpu`` (``tee.accept``).

Only an ``AttestationResult`` (every step passed) hands out the enclave's HPKE
and signing keys.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestation.binding import report_data_for
from attestation.errors import BindingError, SignatureError, UsageError
from attestation.nvidia.verify import VerifiedSystem
from attestation.tee import Tee
from attestation.verifier import SnpInputs, TdxInputs, VerifiedEvidence, verify_evidence
from tcme.client.gpu import verify_gpus
from tcme.client.policy import PartyPolicy
from tcme.contract.capability import CapabilityRecord, check_capability, session_capability
from tcme.v1 import tcme_pb2
from tcme.wire import Claims, Contract, parse_claims, parse_contract

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttestationResult:
    """Evidence, claims and contract that passed every check for one party and nonce."""

    evidence: VerifiedEvidence
    claims: Claims
    contract: Contract | None
    session_id: bytes
    nonce: bytes
    collateral_source: str
    # The attested capability record (contracts with capability tests only).
    capability: CapabilityRecord | None = None
    # The attested GPUs (claims with GPU evidence only).
    gpus: VerifiedSystem | None = None
    # Reference values the party's policy skipped with { skip = true } (table.key).
    skipped: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        """True when the evidence came from the simulated enclave (policy allowed it)."""
        return bool(self.evidence.simulated)

    @property
    def contract_digest(self) -> bytes:
        """SHA-256 of the bound contract bytes (of b"" when no session)."""
        return self.contract.digest if self.contract is not None else hashlib.sha256(b"").digest()

    def summary(self) -> dict[str, Any]:
        """What ``tcme attest`` prints: TEE, SIMULATED, TCB, measurement, model, contract."""
        evidence = dict(self.evidence.summary())
        out: dict[str, Any] = {
            "verdict": "ACCEPTED",
            "tee": self.claims.tee,
            "simulated": self.simulated,
            "tcb": evidence.pop("tcb", None),
            "reference_values_checked": evidence.pop("reference_values_checked", True),
            "measurement": _hex(self.evidence.measurement),
            "model_root_digest": self.claims.model_root_digest,
            "model_signer": self.claims.model_signer,
            "model_signing_method": self.claims.model_method,
            "runtime": self.claims.runtime,
            "session_id": self.session_id.hex() or None,
            "contract_digest": self.contract.digest.hex() if self.contract else None,
            "claims_digest": self.claims.digest.hex(),
            "collateral_source": self.collateral_source or None,
        }
        if self.capability is not None:
            out["capability"] = f"{self.capability.passed}/{self.capability.total}"
        if self.contract is not None and self.contract.capability_tests:
            out["capability_token_budget"] = self.contract.capability_token_budget
        if self.gpus is not None:
            out["gpus"] = self.gpus.summary()
        out["skipped"] = list(self.skipped)
        evidence.pop("skipped", None)  # the evidence's skips are part of self.skipped
        for key, value in evidence.items():
            out.setdefault(f"evidence_{key}", value)
        return out


def _hex(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes | bytearray) else value


def verify_attestation(
    response: tcme_pb2.AttestResponse,
    *,
    policy: PartyPolicy,
    session_id: bytes,
    nonce: bytes,
    at: datetime | None = None,
) -> AttestationResult:
    """Run steps (1)-(7) on ``response``; raise the first failing check's TcmeError.

    Raises ``BindingError`` (session id, REPORT_DATA), ``ParseError``,
    ``SignatureError``, ``PolicyError`` (evidence, model, contract) or
    ``UsageError`` (the policy pins no contract for a session).
    """
    # (1) An answer to another session's request is a swap, whatever else it carries.
    if response.session_id != session_id:
        raise BindingError(
            "attest.session_id",
            "the response is for another session",
            expected=session_id.hex(),
            actual=response.session_id.hex(),
        )
    agreed = policy.contract
    if session_id and agreed is None:
        raise UsageError(
            "policy.contract",
            "the policy pins no contract ([contract] file or digest); refusing a session",
        )
    if not session_id and response.contract:
        raise BindingError("attest.contract", "a contract came with a session-less attestation")
    # (7) first: the contract bytes come from the proxy, so they are hashed and compared
    # with the agreed digest before anything parses them (a hostile contract's patterns,
    # schemas or nesting never reach the parser).
    if session_id and agreed is not None:
        agreed.check(hashlib.sha256(bytes(response.contract)).digest())
    # (2) Parse before any crypto so malformed bytes fail with a parse error.
    claims = parse_claims(response.claims)
    contract = parse_contract(response.contract) if session_id else None
    contract_bytes = contract.raw if contract is not None else b""
    # (3) The binding the evidence must carry, from the party's own nonce (and the
    # capability record's digest when the contract has capability tests).
    capability = session_capability(
        bytes(response.capability),
        claims_digest=claims.identity_digest,
        contract=contract,
        session_id=session_id,
    )
    expected = report_data_for(
        claims.digest,
        hashlib.sha256(contract_bytes).digest(),
        session_id,
        nonce,
        capability.digest if capability is not None else None,
    )
    # (4) Evidence: parse, chain, policy, REPORT_DATA — all inside verify_evidence.
    evidence = response.evidence
    collateral = response.collateral
    certs = bytes(evidence.certs_pem) or bytes(collateral.snp_cert_chain_pem) or None
    inputs = (
        SnpInputs(certs=certs, crl=bytes(collateral.snp_crl_der) or None),
        TdxInputs(collateral=bytes(collateral.tdx_collateral_json) or None),
    )
    try:
        verified = verify_evidence(
            bytes(evidence.report),
            policy=policy.evidence,
            inputs=inputs,
            at=at,
            expected_report_data=expected,
        )
    except UsageError as err:
        # Our policy is well-formed by construction, so "cannot verify" (no VEK sent,
        # unsupported TEE) is about what the host sent: a reject, not a usage error.
        raise SignatureError(
            f"evidence.{err.check}", err.detail, expected=err.expected, actual=err.actual
        ) from err
    # (5) Claims about the TEE must match the TEE that signed them.
    if verified.tee != claims.tee:
        raise BindingError("claims.tee", expected=verified.tee, actual=claims.tee)
    # (6) The model the party accepts.
    policy.model.check(claims.model_root_digest, claims.model_signer)
    # (8) The model's measured score on the contract's tests, if the policy asks.
    if session_id:
        check_capability(policy.min_capability_score, capability)
    # (9) GPU evidence bound into these claims, under the [gpu] policy.
    gpus = verify_gpus(
        claims,
        policy.evidence,
        contract_digest=hashlib.sha256(contract_bytes).digest(),
        session_id=session_id,
        nonce=nonce,
        capability_digest=capability.digest if capability is not None else None,
        at=verified.verified_at or at,
        rims=[bytes(r) for r in collateral.nvidia_rims],
        ocsp={k: bytes(v) for k, v in collateral.nvidia_ocsp.items()},
        cpu_simulated=verified.simulated,
    )
    if verified.simulated:
        log.warning("accepted SIMULATED evidence (policy allow_simulated): not a real TEE")
    return AttestationResult(
        gpus=gpus,
        evidence=verified,
        claims=claims,
        contract=contract,
        session_id=session_id,
        nonce=nonce,
        collateral_source=collateral.source,
        capability=capability,
        skipped=(
            tuple(verified.skipped)
            + (tuple(policy.evidence.skipped(Tee.NVIDIA_GPU)) if gpus is not None else ())
            + tuple(f"model.{k}" for k in policy.model.skipped())
        ),
    )
