"""Collateral the proxy serves beside evidence.

The enclave leaves ``AttestResponse.collateral`` empty. On the way back the
proxy fills it, in this order:

1. the certificates the evidence itself carries (``Evidence.certs_pem``:
   the VEK chain the enclave's provider returned), source ``evidence``;
2. a collateral cache directory (``--collateral-dir``), source ``cache:DIR``:
   first the ready-made files below, then ``host.collateral_store.CollateralStore``
   over the same directory, offline (its AMD KDS mirror ``kds/`` and per-platform
   TDX snapshots ``tdx/<fmspc>/``, filled by ``tcme collateral``).

Ready-made files (written by an operator, or published by ``CollateralStore``)::

    DIR/snp/<CHIP_ID hex>-<REPORTED_TCB hex>.pem   VEK, ASK, ARK for that chip and TCB
    DIR/snp/cert_chain.pem                          fallback chain (single-machine hosts)
    DIR/snp/crl.der                                 AMD CRL for the product
    DIR/tdx/collateral.json                         DCAP collateral as dcap-qvl takes it
    DIR/nvidia/rims/*.xml, *.swidtag                NVIDIA-signed RIMs (driver and VBIOS)
    DIR/nvidia/ocsp/<serial hex>.der                OCSP responses for device certificates

NVIDIA collateral is attached when the claims carry GPU evidence (the claims
are public JSON; the proxy only looks for their ``gpu`` member).

Azure vTPM evidence (``az-snp-vtpm``, ``az-tdx-vtpm``) gets the collateral of
the hardware evidence inside it: the SEV-SNP report's VEK chain and CRL, or
the TD quote's Intel collateral.

The proxy never fetches from the network while answering a party.

Collateral is untrusted: a party checks every byte against its own pinned
roots, so a wrong or missing file can make verification fail but never pass.
This is the only response the proxy decodes; it contains no party data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from attestation.errors import TcmeError
from host.forward import ResponseHook

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the proxy decodes by descriptor; tcme_pb2 only names the fields
    from tcme.v1.tcme_pb2 import AttestResponse

ATTEST_RESPONSE = "tcme.v1.AttestResponse"
# AMD SEV-SNP ABI spec (56860), Table 23 ATTESTATION_REPORT: byte offsets.
SNP_REPORTED_TCB = slice(0x180, 0x188)
SNP_CHIP_ID = slice(0x1A0, 0x1E0)
SNP_REPORT_SIZE = 0x4A0
TEE_TYPE_UNSPECIFIED = 0
TEE_TYPE_SEV_SNP = 1
TEE_TYPE_TDX = 2
TEE_TYPE_AZ_SNP_VTPM = 3
TEE_TYPE_AZ_TDX_VTPM = 4
MAX_NVIDIA_FILES = 64


class CollateralCache:
    """Read-only view of a collateral directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._store: Any = None

    def _offline_store(self) -> Any:
        if self._store is None:
            from host.collateral_store import CollateralStore

            self._store = CollateralStore(self.directory, offline=True)
        return self._store

    def _from_store(self, what: str, method: str, evidence: bytes) -> bytes | None:
        try:
            return getattr(self._offline_store(), method)(evidence)
        except TcmeError as err:  # a miss or unreadable evidence: the party will say so
            log.info("collateral: no %s in %s (%s)", what, self.directory, err.check)
            return None

    @property
    def source(self) -> str:
        """The ``Collateral.source`` value for data from this cache."""
        return f"cache:{self.directory}"

    def snp_chain(self, report: bytes) -> bytes | None:
        """VEK/ASK/ARK PEM for the chip and TCB named in ``report``, or the fallback chain."""
        candidates = []
        if len(report) >= SNP_REPORT_SIZE:
            chip = report[SNP_CHIP_ID].hex()
            # REPORTED_TCB is little-endian; its hex is written in wire order.
            tcb = report[SNP_REPORTED_TCB].hex()
            candidates.append(self.directory / "snp" / f"{chip}-{tcb}.pem")
        candidates.append(self.directory / "snp" / "cert_chain.pem")
        found = _first_file(candidates)
        return found or self._from_store("SEV-SNP VEK chain", "snp_certs_for", report)

    def snp_crl(self, report: bytes = b"") -> bytes | None:
        """The cached AMD CRL (DER), if any."""
        found = _first_file([self.directory / "snp" / "crl.der"])
        if found or not report:
            return found
        return self._from_store("SEV-SNP CRL", "snp_crl_for", report)

    def nvidia_rims(self) -> list[bytes]:
        """Every cached NVIDIA RIM (bounded: at most ``MAX_NVIDIA_FILES``)."""
        folder = self.directory / "nvidia" / "rims"
        if not folder.is_dir():
            return []
        paths = sorted(p for p in folder.iterdir() if p.suffix in (".xml", ".swidtag"))
        return [p.read_bytes() for p in paths[:MAX_NVIDIA_FILES] if p.is_file()]

    def nvidia_ocsp(self) -> dict[str, bytes]:
        """Cached OCSP responses by certificate serial (hex), bounded like the RIMs."""
        folder = self.directory / "nvidia" / "ocsp"
        if not folder.is_dir():
            return {}
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".der" and p.is_file())
        return {p.stem.lower(): p.read_bytes() for p in paths[:MAX_NVIDIA_FILES]}

    def tdx_collateral(self, quote: bytes = b"") -> bytes | None:
        """Cached TDX DCAP collateral JSON, if any."""
        found = _first_file([self.directory / "tdx" / "collateral.json"])
        if found or not quote:
            return found
        return self._from_store("TDX collateral", "tdx_collateral_for", quote)


def _first_file(paths: Sequence[Path]) -> bytes | None:
    for path in paths:
        if path.is_file():
            return path.read_bytes()
    return None


def attach_collateral(response: AttestResponse, cache: CollateralCache | None) -> None:
    """Fill ``response.collateral`` (an ``AttestResponse``) in place where it is empty."""
    evidence = response.evidence
    collateral = response.collateral
    sources = []
    kind, hardware = _hardware_evidence(evidence.tee, bytes(evidence.report))
    if kind == TEE_TYPE_SEV_SNP:
        if not collateral.snp_cert_chain_pem:
            if evidence.certs_pem:
                collateral.snp_cert_chain_pem = evidence.certs_pem
                sources.append("evidence")
            elif cache is not None:
                chain = cache.snp_chain(hardware)
                if chain:
                    collateral.snp_cert_chain_pem = chain
                    sources.append(cache.source)
        if not collateral.snp_crl_der and cache is not None:
            crl = cache.snp_crl(hardware)
            if crl:
                collateral.snp_crl_der = crl
                sources.append(cache.source)
    elif kind == TEE_TYPE_TDX and not collateral.tdx_collateral_json and cache is not None:
        blob = cache.tdx_collateral(hardware)
        if blob:
            collateral.tdx_collateral_json = blob
            sources.append(cache.source)
    if cache is not None and _claims_carry_gpus(response.claims):
        rims, ocsp = cache.nvidia_rims(), cache.nvidia_ocsp()
        if rims and not collateral.nvidia_rims:
            collateral.nvidia_rims.extend(rims)
            sources.append(cache.source)
        if ocsp and not collateral.nvidia_ocsp:
            collateral.nvidia_ocsp.update(ocsp)
            sources.append(cache.source)
    if sources and not collateral.source:
        collateral.source = ",".join(dict.fromkeys(sources))


def _claims_carry_gpus(claims: bytes) -> bool:
    # A cheap look, not a parse: the party parses and verifies the claims.
    return b'"gpu":{' in bytes(claims)


def _hardware_evidence(tee: int, report: bytes) -> tuple[int, bytes]:
    """The hardware kind and bytes whose collateral a verifier needs.

    Azure vTPM evidence carries an SEV-SNP report (inside its HCL report) or a TD
    quote: its collateral is theirs. Unreadable Azure evidence gets none (the
    party's own parser will say what is wrong with it).
    """
    if tee not in (TEE_TYPE_AZ_SNP_VTPM, TEE_TYPE_AZ_TDX_VTPM):
        return tee, report
    from attestation.azure.evidence import parse_azure_evidence
    from attestation.azure.hcl import parse_hcl_report

    try:
        parts = parse_azure_evidence(report)
        if tee == TEE_TYPE_AZ_TDX_VTPM:
            return TEE_TYPE_TDX, parts.td_quote or b""
        return TEE_TYPE_SEV_SNP, parse_hcl_report(parts.hcl_report).hardware_report
    except TcmeError as err:
        log.info("collateral: unreadable Azure evidence (%s)", err.check)
        return TEE_TYPE_UNSPECIFIED, b""


def attest_hooks(
    services: Sequence[ServiceDescriptor], collateral_dir: Path | None
) -> dict[str, ResponseHook]:
    """A hook for every method returning ``tcme.v1.AttestResponse``: attach collateral."""
    cache = CollateralCache(collateral_dir) if collateral_dir is not None else None
    hooks: dict[str, ResponseHook] = {}
    for service in services:
        for method in service.methods:
            if method.output_type.full_name != ATTEST_RESPONSE:
                continue
            response_class = message_factory.GetMessageClass(method.output_type)

            def hook(raw: bytes, _cls: type[Message] = response_class) -> bytes:
                # The method's output type is tcme.v1.AttestResponse (checked above).
                response = cast("AttestResponse", _cls.FromString(raw))
                attach_collateral(response, cache)
                return response.SerializeToString()

            hooks[f"/{service.full_name}/{method.name}"] = hook
    return hooks
