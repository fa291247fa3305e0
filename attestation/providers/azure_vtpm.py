"""Evidence from an Azure confidential VM's vTPM (``az-snp-vtpm`` / ``az-tdx-vtpm``).

On Azure's SEV-SNP and TDX CVMs the paravisor keeps the guest away from the
hardware's own interfaces. Per request this provider:

1. reads the HCL report from vTPM NV index ``0x01400001`` (hardware report +
   runtime data naming the AK) and checks it parses;
2. on TDX, turns the HCL's TDREPORT into a TD quote through Azure's instance
   metadata service (IMDS, ``POST /acc/tdquote``);
3. asks the vTPM for ``TPM2_Quote`` by the AK (persistent handle
   ``0x81000003``) over all 24 SHA-256 PCRs, with tcme's 64-byte REPORT_DATA
   as qualifying data, or its SHA-256 where the TPM caps the size
   (docs/protocol.md "Azure vTPM binding");
4. reads the PCR values and checks they are the ones quoted (a PCR extended in
   between means another try);
5. returns the CoCo/Trustee JSON (v1, with the VCEK when known) as ``Evidence.raw``.

The TPM is reached through ``attestation.providers.tpm2`` (``/dev/tpmrm0`` on
Azure; a Unix socket to ``swtpm`` in tests). SEV-SNP certificates (VCEK, ASK,
ARK) come from ``certs`` when given (simulated runs), else from IMDS
(``/metadata/THIM/amd/certification``) when it answers, else from the host
proxy's collateral cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from attestation.azure.evidence import AzureEvidence
from attestation.azure.hcl import REPORT_TYPE_SNP, HclReport, parse_hcl_report
from attestation.azure.quote import PCR_COUNT
from attestation.azure.runtime_data import parse_runtime_data
from attestation.azure.tpm import (
    TPM_ALG_RSASSA,
    TPM_ALG_SHA256,
    parse_attest,
    parse_rsa_signature,
)
from attestation.azure.verify import TEE_AZ_SNP, TEE_AZ_TDX
from attestation.errors import TcmeError
from attestation.providers._blobs import check_report_data
from attestation.providers.base import Evidence
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.tpm2 import DeviceTransport, Tpm, TpmError, TpmTransport

log = logging.getLogger(__name__)

TPM_DEVICE = Path("dev/tpmrm0")
HCL_REPORT_NV_INDEX = 0x01400001
AK_HANDLE = 0x81000003
IMDS_URL = "http://169.254.169.254"
IMDS_TD_QUOTE = "/acc/tdquote"
IMDS_AMD_CERTS = "/metadata/THIM/amd/certification"
IMDS_TIMEOUT_S = 10.0
ATTEMPTS = 3

TdQuoteFetcher = Callable[[bytes], bytes]
# IMDS is link-local: never through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AzureVtpmProvider:
    """Azure CVM evidence: HCL report and AK quote from the vTPM (+ IMDS TD quote on TDX)."""

    name = "azure-vtpm"
    simulated = False

    def __init__(
        self,
        transport: TpmTransport,
        *,
        imds_url: str = IMDS_URL,
        certs: bytes | None = None,
        simulated: bool = False,
        td_quote: TdQuoteFetcher | None = None,
    ) -> None:
        self.tpm = Tpm(transport)
        self.imds_url = imds_url.rstrip("/")
        self._certs = certs
        self.simulated = simulated
        self._td_quote = td_quote or self._imds_td_quote
        hcl = self.read_hcl_report()
        self.tee = TEE_AZ_SNP if hcl.report_type == REPORT_TYPE_SNP else TEE_AZ_TDX

    @classmethod
    def from_device(
        cls,
        root: Path = Path("/"),
        *,
        imds_url: str = IMDS_URL,
        certs: bytes | None = None,
        td_quote: TdQuoteFetcher | None = None,
    ) -> AzureVtpmProvider:
        """The provider on ``/dev/tpmrm0`` under ``root``; ``ProviderUnavailable`` when absent.

        The keywords are ``__init__``'s; a real device is never ``simulated``.
        """
        device = Path(root) / TPM_DEVICE
        if not device.exists():
            raise ProviderUnavailable(
                "azure-vtpm.device", f"{device} does not exist (no TPM resource manager)"
            )
        try:
            return cls(DeviceTransport(device), imds_url=imds_url, certs=certs, td_quote=td_quote)
        except TpmError as err:
            raise ProviderUnavailable(
                "azure-vtpm.hcl_report",
                f"{device} answers but holds no Azure HCL report at NV index "
                f"0x{HCL_REPORT_NV_INDEX:08x} (not an Azure confidential VM): {err.message()}",
            ) from err

    def read_hcl_report(self) -> HclReport:
        """The HCL report the paravisor keeps in the vTPM, parsed (``ProviderError`` if bad)."""
        raw = self.tpm.nv_read(HCL_REPORT_NV_INDEX)
        try:
            hcl = parse_hcl_report(raw)
            parse_runtime_data(hcl.variable_data)
        except TcmeError as err:
            raise ProviderError(
                "azure-vtpm.hcl_report", f"the vTPM's HCL report is malformed: {err.message()}"
            ) from err
        return hcl

    def get_evidence(self, report_data: bytes) -> Evidence:
        """Fresh evidence whose quote carries exactly these 64 bytes (or their SHA-256)."""
        report_data = check_report_data(report_data)
        hcl = self.read_hcl_report()
        td_quote = (
            self._td_quote(hcl.hardware_report) if hcl.report_type != REPORT_TYPE_SNP else None
        )
        message, signature, pcrs = self._quote(bytes(report_data))
        certs = self._certs if self._certs is not None else b""
        if not certs and hcl.report_type == REPORT_TYPE_SNP:
            certs = self._imds_amd_certs()
        evidence = AzureEvidence(
            version=1,
            hcl_report=hcl.raw,
            quote_message=message,
            quote_signature=signature,
            pcrs=tuple(pcrs),
            # The VCEK inside the JSON, as the CoCo attester writes it, so Trustee reads
            # tcme's evidence as its own; the whole chain also goes in Evidence.certs.
            vcek=_first_certificate(certs) if certs else None,
            td_quote=td_quote,
        )
        return Evidence(
            tee=self.tee,
            raw=evidence.to_json(),
            certs=certs,
            simulated=self.simulated,
            provider=self.name,
        )

    def _quote(self, report_data: bytes) -> tuple[bytes, bytes, list[bytes]]:
        selection = range(PCR_COUNT)
        qualifying = report_data
        for _attempt in range(ATTEMPTS):
            try:
                result = self.tpm.quote(AK_HANDLE, qualifying, selection)
            except TpmError as err:
                if qualifying is report_data and err.is_size_error:
                    log.info("the vTPM caps qualifying data below 64 bytes: quoting its SHA-256")
                    qualifying = hashlib.sha256(report_data).digest()
                    continue
                raise
            pcrs = self.tpm.pcr_read(selection)
            attest = parse_attest(result.message)
            sig = parse_rsa_signature(result.signature)
            if attest.pcr_digest == hashlib.new(sig.hash_name, b"".join(pcrs)).digest():
                return result.message, _coco_signature(result.signature), pcrs
            log.info("a PCR changed between the quote and the read; quoting again")
        raise ProviderError(
            "azure-vtpm.pcrs", f"PCR values kept changing during {ATTEMPTS} quote attempts"
        )

    def _imds_td_quote(self, td_report: bytes) -> bytes:
        body = json.dumps({"report": _b64url(td_report)}).encode()
        request = urllib.request.Request(
            self.imds_url + IMDS_TD_QUOTE,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with _NO_PROXY.open(request, timeout=IMDS_TIMEOUT_S) as response:
                answer = json.loads(response.read(1024 * 1024))
            quote = answer["quote"]
            return base64.urlsafe_b64decode(quote + "=" * (-len(quote) % 4))
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as err:
            raise ProviderError(
                "azure-vtpm.imds", f"IMDS did not turn the TDREPORT into a TD quote: {err}"
            ) from err

    def _imds_amd_certs(self) -> bytes:
        request = urllib.request.Request(
            self.imds_url + IMDS_AMD_CERTS, headers={"Metadata": "true"}
        )
        try:
            with _NO_PROXY.open(request, timeout=IMDS_TIMEOUT_S) as response:
                answer = json.loads(response.read(1024 * 1024))
            return (answer["vcekCert"] + answer["certificateChain"]).encode()
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as err:
            log.info("no AMD certificates from IMDS (%s); the host proxy must serve them", err)
            return b""


def _coco_signature(tpmt_signature: bytes) -> bytes:
    """The raw RSA signature for RSASSA-SHA256 (the CoCo form), else the whole TPMT_SIGNATURE."""
    sig = parse_rsa_signature(tpmt_signature)
    if sig.scheme == TPM_ALG_RSASSA and sig.hash_alg == TPM_ALG_SHA256:
        return sig.signature
    return tpmt_signature


def _first_certificate(pem: bytes) -> bytes | None:
    """The first certificate of a PEM chain, DER (the VCEK: chains list it first)."""
    from attestation.snp import _x509

    try:
        return _x509.split_certificates(pem)[0]
    except (TcmeError, IndexError):
        return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
