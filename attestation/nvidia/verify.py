"""Is this NVIDIA GPU/NVSwitch evidence genuine, fresh and for this verifier's nonce?

Steps, each a function named for it (numbers as tagged in the code):

(1) ``parse_report``: the SPDM 1.1 request + response, by its length fields.
(2) ``verify_chain``: every link of the certificate chain, ECDSA P-384/SHA-384,
    up to the pinned "NVIDIA Device Identity CA", all valid at one instant.
(3) ``leaf_fwid``: the leaf is a device leaf (it carries a DICE FWID).
(4) ``verify_report_signature``: ECDSA P-384 over SHA-384 of request || response
    up to the signature, under the leaf's key.
(5) ``check_nonce``: the request nonce equals the verifier's (constant time).
(6) ``check_fwid``: the report's opaque FWID equals the leaf's FWID (Hopper and
    Blackwell rules in ``attestation.nvidia.chain``); a report from a driver
    that predates the FWID field records "absent" (the ``[gpu]`` policy decides).
(7) ``check_ocsp`` (only with cached OCSP responses or when the caller
    requires them): every non-root certificate GOOD, fresh at the instant.

``verify_device_evidence`` runs them all and returns ``VerifiedDevice``.
``verify_system`` verifies a whole system's devices (GPUs, and NVSwitches in
protected-PCIe mode) as one unit, including the topology check. RIM matching
and policy (driver/VBIOS minimums, architectures, counts) are separate steps
(``attestation.nvidia.rim``, ``attestation.nvidia.policy``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation.errors import BindingError, ParseError, PolicyError, SignatureError, TcmeError
from attestation.nvidia.abi import NONCE_SIZE, NvidiaReport, OpaqueType, parse_report
from attestation.nvidia.chain import (
    VerifiedChain,
    leaf_fwid,
    ueid,
    verify_chain_pem,
)
from attestation.nvidia.ocsp import check_ocsp
from attestation.nvidia.roots import device_identity_ca
from attestation.snp._x509 import common_name, split_certificates

log = logging.getLogger(__name__)

SIMULATED_ROOT_NAME = "SIMULATED NVIDIA Device Identity CA"
ARCH_BY_MODEL = {"GH100": "HOPPER", "GB100": "BLACKWELL", "LS_10": "LS10"}
KIND_GPU = "gpu"
KIND_SWITCH = "switch"


@dataclass(frozen=True)
class DeviceEvidence:
    """One device's evidence as it travels: the report bytes and its PEM chain."""

    report: bytes
    certs: bytes

    @property
    def digest(self) -> bytes:
        """SHA-256(lp(report) || lp(certs)): what the claims bind for this device."""
        return evidence_digest(self.report, self.certs)


def evidence_digest(report: bytes, certs: bytes) -> bytes:
    """SHA-256 over the length-prefixed report and certificate chain bytes."""
    message = b"".join(len(x).to_bytes(4, "big") + bytes(x) for x in (report, certs))
    return hashlib.sha256(message).digest()


@dataclass(frozen=True)
class VerifiedDevice:
    """A device report whose chain, signature, nonce and FWID verified."""

    kind: str  # "gpu" | "switch"
    arch: str  # "HOPPER" | "BLACKWELL" | "LS10" | the BROM model
    hwmodel: str  # the BROM certificate's CN, e.g. "GH100 A01 GSP BROM"
    ueid: str  # the leaf's serial number, decimal
    report: NvidiaReport = field(repr=False)
    chain: VerifiedChain = field(repr=False)
    fwid: bytes | None  # None: the report predates the FWID field
    fwid_source: str
    digest: bytes
    ocsp_checked: bool
    verified_at: datetime
    simulated: bool = False

    @property
    def driver_version(self) -> str | None:
        """The driver version the GPU reports (None on a switch)."""
        return self.report.opaque.driver_version

    @property
    def vbios_version(self) -> str | None:
        """The VBIOS version, e.g. "96.00.9f.00.01"."""
        return self.report.opaque.vbios_version

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary of what verified."""
        opaque = self.report.opaque
        return {
            "kind": self.kind,
            "arch": self.arch,
            "hwmodel": self.hwmodel,
            "ueid": self.ueid,
            "driver_version": self.driver_version,
            "vbios_version": self.vbios_version if self.kind == KIND_GPU else None,
            "fwid": self.fwid.hex() if self.fwid else None,
            "fwid_source": self.fwid_source,
            "protected_pcie_status": opaque.status(OpaqueType.PROTECTED_PCIE_STATUS),
            "feature_flag": opaque.feature_flag,
            "nonce": self.report.nonce.hex(),
            "evidence_digest": self.digest.hex(),
            "root_sha256": self.chain.root_sha256,
            "ocsp_checked": self.ocsp_checked,
            "simulated": self.simulated,
            "measurements": len(self.report.blocks),
        }


def verify_device_evidence(
    evidence: DeviceEvidence,
    *,
    nonce: bytes,
    at: datetime | None = None,
    ocsp: Mapping[str, bytes] | None = None,
    require_ocsp: bool = False,
    allow_simulated: bool = False,
) -> VerifiedDevice:
    """Steps (1)-(7) for one device; raises ``ParseError``, ``SignatureError``, ``BindingError``.

    ``nonce``: the 32-byte nonce this verifier expects (``attestation.nvidia.binding``
    derives it from the session binding). ``at``: verification instant (default
    now). ``ocsp``: cached OCSP responses (DER) keyed by certificate serial (hex).
    ``allow_simulated``: trust a chain's own root when it is named SIMULATED
    (``attestation.nvidia.simulate``); never set it for genuine GPUs.
    """
    when = _instant(at)
    # (1) parse
    report = parse_report(evidence.report)
    # (2) chain to the pinned NVIDIA Device Identity CA (or, only if allowed, a SIMULATED one)
    root, simulated = _trusted_root(_last_certificate(evidence.certs), allow_simulated)
    chain = verify_chain_pem(evidence.certs, root=root, at=when, check="nvidia.chain")
    # (3) a device leaf: its FWID
    cert_fwid, fwid_oid = leaf_fwid(chain.leaf)
    # (4) the report signature
    verify_report_signature(report, chain.leaf_key)
    # (5) the verifier's nonce
    check_nonce(report, nonce)
    # (6) FWID of the report equals the leaf's
    fwid = check_fwid(report, cert_fwid)
    # (7) revocation from cached OCSP responses
    ocsp_checked = False
    if ocsp or require_ocsp:
        ocsp_checked = check_ocsp(chain, ocsp or {}, at=when, require_fresh=require_ocsp)
    hwmodel = common_name(chain.certificates[1].subject)
    model = hwmodel.split(" ", 1)[0]
    return VerifiedDevice(
        kind=KIND_SWITCH if report.is_switch else KIND_GPU,
        arch=ARCH_BY_MODEL.get(model, model),
        hwmodel=hwmodel,
        ueid=ueid(chain.leaf),
        report=report,
        chain=chain,
        fwid=fwid,
        fwid_source=fwid_oid if fwid is not None else "absent",
        digest=evidence.digest,
        ocsp_checked=ocsp_checked,
        verified_at=when,
        simulated=simulated,
    )


@lru_cache(maxsize=256)
def _last_certificate(pem: bytes) -> x509.Certificate:
    """The chain's last certificate, to choose the root (parsed once per distinct DER)."""
    ders = split_certificates(bytes(pem))
    if not ders:
        raise ParseError("nvidia.certs", "no certificates", expected="PEM chain", actual="none")
    return _load_der(ders[-1])


@lru_cache(maxsize=256)
def _load_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise ParseError("nvidia.certs", f"not a valid X.509 certificate: {err}") from err


def _trusted_root(last: x509.Certificate, allow_simulated: bool) -> tuple[x509.Certificate, bool]:
    if common_name(last.subject) != SIMULATED_ROOT_NAME or last.issuer != last.subject:
        return device_identity_ca(), False
    if not allow_simulated:
        raise PolicyError(
            "simulated",
            "GPU evidence is SIMULATED (not from NVIDIA hardware); "
            "the policy does not allow simulated evidence",
            expected="allow_simulated = true",
            actual="allow_simulated = false",
        )
    log.warning("verifying SIMULATED GPU evidence (allowed by policy)")
    return last, True


def verify_report_signature(report: NvidiaReport, key: ec.EllipticCurvePublicKey) -> None:
    """(4) ECDSA P-384, SHA-384, over ``report.signed_bytes``; raw r || s big-endian."""
    half = len(report.signature) // 2
    r = int.from_bytes(report.signature[:half], "big")
    s = int.from_bytes(report.signature[half:], "big")
    try:
        key.verify(encode_dss_signature(r, s), report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as err:
        raise SignatureError(
            "nvidia.report.signature",
            "the report signature does not verify under the leaf certificate's key",
            expected="valid ECDSA P-384 signature",
            actual="invalid signature",
        ) from err


def check_nonce(report: NvidiaReport, nonce: bytes) -> None:
    """(5) The request nonce is the verifier's: never the responder's nonce."""
    expected = bytes(nonce)
    if len(expected) != NONCE_SIZE or not hmac.compare_digest(expected, report.nonce):
        raise BindingError(
            "nvidia.nonce",
            "the report answers another nonce (replayed or for another session)",
            expected=expected,
            actual=report.nonce,
        )


def check_fwid(report: NvidiaReport, cert_fwid: bytes) -> bytes | None:
    """(6) The opaque FWID equals the leaf's; None when the report has no FWID field."""
    fwid = report.opaque.fwid
    if fwid is None:
        return None
    if not hmac.compare_digest(fwid, cert_fwid):
        raise SignatureError(
            "nvidia.fwid",
            "the report's FWID is not the leaf certificate's: the chain is another device's",
            expected=cert_fwid,
            actual=fwid,
        )
    return fwid


@dataclass(frozen=True)
class VerifiedSystem:
    """Every device of one system, verified as one unit under one nonce."""

    gpus: tuple[VerifiedDevice, ...]
    switches: tuple[VerifiedDevice, ...]
    protected_pcie: bool

    @property
    def devices(self) -> tuple[VerifiedDevice, ...]:
        """GPUs then switches, in evidence order."""
        return self.gpus + self.switches

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "protected_pcie": self.protected_pcie,
            "gpus": [d.summary() for d in self.gpus],
            "switches": [d.summary() for d in self.switches],
        }


def verify_system(
    evidence: Sequence[DeviceEvidence],
    *,
    nonce: bytes,
    at: datetime | None = None,
    ocsp: Mapping[str, bytes] | None = None,
    require_ocsp: bool = False,
    allow_simulated: bool = False,
) -> VerifiedSystem:
    """Verify every device, then the system: no device twice, and in protected-PCIe mode
    the topology (``check_topology``). Raises on the first failing device, naming it.
    """
    when = _instant(at)
    verified: list[VerifiedDevice] = []
    for position, item in enumerate(evidence):
        try:
            verified.append(
                verify_device_evidence(
                    item,
                    nonce=nonce,
                    at=when,
                    ocsp=ocsp,
                    require_ocsp=require_ocsp,
                    allow_simulated=allow_simulated,
                )
            )
        except TcmeError as err:
            raise type(err)(
                err.check,
                f"device {position}: {err.detail}",
                expected=err.expected,
                actual=err.actual,
            ) from err
    seen: dict[str, int] = {}
    for position, device in enumerate(verified):
        if device.ueid in seen:
            raise BindingError(
                "nvidia.system.duplicate",
                f"device {position} is device {seen[device.ueid]} again (same leaf certificate)",
                expected="one evidence per physical device",
                actual=f"ueid {device.ueid} twice",
            )
        seen[device.ueid] = position
    gpus = tuple(d for d in verified if d.kind == KIND_GPU)
    switches = tuple(d for d in verified if d.kind == KIND_SWITCH)
    ppcie = any(d.report.opaque.status(OpaqueType.PROTECTED_PCIE_STATUS) == "enabled" for d in gpus)
    if ppcie or switches:
        check_topology(gpus, switches)
    return VerifiedSystem(gpus=gpus, switches=switches, protected_pcie=ppcie)


def check_topology(gpus: Sequence[VerifiedDevice], switches: Sequence[VerifiedDevice]) -> None:
    """Protected PCIe: the switches the GPUs name are exactly the switches that attested,
    every GPU is in protected-PCIe mode, and every switch names as many GPUs as attested.
    """
    for position, gpu in enumerate(gpus):
        status = gpu.report.opaque.status(OpaqueType.PROTECTED_PCIE_STATUS)
        if status != "enabled":
            raise BindingError(
                "nvidia.topology.ppcie",
                f"GPU {position} is not in protected-PCIe mode while others are",
                expected="enabled",
                actual=status,
            )
    attested = {s.report.opaque.own_switch_pdi() for s in switches}
    attested_hex = sorted(p.hex() for p in attested if p)
    for position, gpu in enumerate(gpus):
        named = sorted(p.hex() for p in gpu.report.opaque.switch_pdis())
        if named != attested_hex:
            raise BindingError(
                "nvidia.topology.switches",
                f"GPU {position} names switches other than those that attested",
                expected=",".join(attested_hex) or "none",
                actual=",".join(named) or "none",
            )
    gpu_sets = {tuple(sorted(p.hex() for p in s.report.opaque.switch_gpu_pdis())) for s in switches}
    if len(gpu_sets) > 1:
        raise BindingError(
            "nvidia.topology.gpus",
            "the switches disagree on which GPUs they connect",
            expected="one GPU set",
            actual=f"{len(gpu_sets)} different sets",
        )
    for gpu_set in gpu_sets:
        if len(gpu_set) != len(gpus):
            raise BindingError(
                "nvidia.topology.gpus",
                "the switches connect a different number of GPUs than attested",
                expected=len(gpus),
                actual=len(gpu_set),
            )


def _instant(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
