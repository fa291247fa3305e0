"""Fetch TDX collateral from Intel PCS or a PCCS (the only TDX code that uses the network).

Used only by ``tcme collateral fetch``; verification reads the cache
(``attestation.tdx.collateral``) and works offline. The base URL and the root CA CRL
URL are inputs, so tests serve the same responses from a local server.

Requests (Intel PCS API v4; a PCCS serves the same paths):

* ``GET {base}/tdx/certification/v4/tcb?fmspc={FMSPC}``: TCB Info, issuer chain in header
  ``TCB-Info-Issuer-Chain`` (``SGX-TCB-Info-Issuer-Chain`` from older servers);
* ``GET {base}/tdx/certification/v4/qe/identity``: TD QE Identity, header
  ``SGX-Enclave-Identity-Issuer-Chain``;
* ``GET {base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der``: PCK CRL, header
  ``SGX-PCK-CRL-Issuer-Chain``;
* the Intel SGX Root CA CRL: from Intel's certificate site for PCS (the CRL distribution
  point in the root certificate), or ``GET {base}/sgx/certification/v4/rootcacrl`` (hex)
  from a PCCS.

Header values are URL-encoded PEM. Nothing fetched is trusted: dcap-qvl verifies every
signature when the collateral is used, which is also why TLS is not what protects it.
"""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from attestation.errors import UnreachableError, UsageError
from attestation.tdx.collateral import (
    PCK_CAS,
    TdxCollateral,
    crl_der,
    decode_issuer_chain,
    split_signed_body,
)

log = logging.getLogger(__name__)

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
# CRL distribution point of the Intel SGX Root CA certificate.
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
PCCS_ROOT_CA_CRL_PATH = "/sgx/certification/v4/rootcacrl"

TCB_INFO_CHAIN_HEADERS = ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
QE_IDENTITY_CHAIN_HEADERS = ("SGX-Enclave-Identity-Issuer-Chain",)
PCK_CRL_CHAIN_HEADERS = ("SGX-PCK-CRL-Issuer-Chain",)


class CollateralFetchError(UnreachableError):
    """A collateral service could not be reached or answered with something unusable."""


@dataclass(frozen=True)
class CollateralService:
    """Where to fetch from: Intel PCS, or a PCCS (caching service) at ``base_url``."""

    base_url: str
    root_ca_crl_url: str
    kind: str = "pcs"  # "pcs" or "pccs"
    timeout: float = 30.0
    insecure_tls: bool = False

    @classmethod
    def pcs(
        cls,
        base_url: str = INTEL_PCS_URL,
        *,
        root_ca_crl_url: str = INTEL_ROOT_CA_CRL_URL,
        timeout: float = 30.0,
    ) -> CollateralService:
        """Intel's Provisioning Certification Service (or a server answering like it)."""
        return cls(_base(base_url), root_ca_crl_url, "pcs", timeout)

    @classmethod
    def pccs(
        cls,
        base_url: str,
        *,
        root_ca_crl_url: str | None = None,
        timeout: float = 30.0,
        insecure_tls: bool = False,
    ) -> CollateralService:
        """A PCCS. ``insecure_tls`` skips TLS certificate checks (PCCS often self-signs);
        the collateral stays authenticated by Intel's signatures."""
        base = _base(base_url)
        return cls(
            base, root_ca_crl_url or base + PCCS_ROOT_CA_CRL_PATH, "pccs", timeout, insecure_tls
        )


def fetch_collateral(
    fmspc: str, *, ca: str = "platform", service: CollateralService
) -> TdxCollateral:
    """Fetch the TCB Info for ``fmspc``, the TD QE Identity and both CRLs; check their shape."""
    fmspc = fmspc.lower()
    if len(fmspc) != 12 or any(c not in "0123456789abcdef" for c in fmspc):
        raise UsageError("collateral.fmspc", "expected 6 bytes of hex", actual=fmspc)
    if ca not in PCK_CAS:
        raise UsageError("collateral.ca", "unknown PCK CA", expected=list(PCK_CAS), actual=ca)
    if service.insecure_tls:
        log.warning("fetching collateral WITHOUT TLS certificate checks (insecure_tls)")
    base = service.base_url
    fmspc_query = urllib.parse.quote(fmspc.upper())

    tcb_body, tcb_headers = _get(service, f"{base}/tdx/certification/v4/tcb?fmspc={fmspc_query}")
    qe_body, qe_headers = _get(service, f"{base}/tdx/certification/v4/qe/identity")
    crl_body, crl_headers = _get(
        service, f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
    )
    root_crl_body, _ = _get(service, service.root_ca_crl_url)

    tcb_info, tcb_sig = split_signed_body(
        _utf8(tcb_body, "tcb"), "tcbInfo", check="collateral.tcb_info"
    )
    qe_identity, qe_sig = split_signed_body(
        _utf8(qe_body, "qe/identity"), "enclaveIdentity", check="collateral.qe_identity"
    )
    collateral = TdxCollateral(
        pck_crl_issuer_chain=decode_issuer_chain(_header(crl_headers, PCK_CRL_CHAIN_HEADERS)),
        root_ca_crl=crl_der(root_crl_body, "collateral.root_ca_crl"),
        pck_crl=crl_der(crl_body, "collateral.pck_crl"),
        tcb_info_issuer_chain=decode_issuer_chain(_header(tcb_headers, TCB_INFO_CHAIN_HEADERS)),
        tcb_info=tcb_info,
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=decode_issuer_chain(
            _header(qe_headers, QE_IDENTITY_CHAIN_HEADERS)
        ),
        qe_identity=qe_identity,
        qe_identity_signature=qe_sig,
        source=base,
    )
    if collateral.fmspc != fmspc:
        raise CollateralFetchError(
            "collateral.fmspc",
            "service answered for another platform",
            expected=fmspc,
            actual=collateral.fmspc,
        )
    if collateral.pck_crl_ca != ca:
        raise CollateralFetchError(
            "collateral.pck_crl",
            "service sent another CA's CRL",
            expected=ca,
            actual=collateral.pck_crl_ca,
        )
    return collateral


def _base(url: str) -> str:
    url = url.rstrip("/")
    for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):
        url = url.removesuffix(suffix)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise UsageError("collateral.url", "expected an http(s) URL", actual=url)
    return url


def _get(service: CollateralService, url: str) -> tuple[bytes, dict[str, str]]:
    context = None
    if url.startswith("https:") and service.insecure_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"User-Agent": "tcme-collateral"})
    try:
        with urllib.request.urlopen(request, timeout=service.timeout, context=context) as reply:
            body = reply.read()
            headers = {k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as err:
        raise CollateralFetchError(
            "collateral.fetch", f"GET {url}: HTTP {err.code} {err.reason}"
        ) from err
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise CollateralFetchError("collateral.fetch", f"GET {url}: {reason}") from err
    return body, headers


def _header(headers: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = headers.get(name.lower())
        if value:
            return value
    raise CollateralFetchError(
        "collateral.fetch.header",
        "issuer chain header missing",
        expected=" or ".join(names),
        actual="absent",
    )


def _utf8(body: bytes, what: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CollateralFetchError("collateral.fetch", f"{what}: body is not UTF-8") from err
