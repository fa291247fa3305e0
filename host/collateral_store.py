"""Collateral the host proxy ships beside evidence, fetched once and cached.

A party must be able to verify evidence offline, so the untrusted host hands
it everything the verifier needs besides its own pinned roots:

* SEV-SNP: the VEK (VCEK from AMD KDS by CHIP_ID and REPORTED_TCB; a VLEK only
  from the cache, since KDS does not serve VLEKs) followed by the ASK/ASVK and
  ARK (KDS ``cert_chain``), as PEM; optionally the product's CRL;
* TDX: Intel collateral for the quote's platform (TCB Info, QE Identity, CRLs
  and issuer chains) from Intel PCS or a PCCS, as dcap-qvl JSON.

``CollateralStore(cache_dir, offline=True)`` (the default) never touches the
network: a pre-filled cache is all it reads, and a miss names the missing
path. With ``offline=False`` it fetches what is missing (KDS paced and backed
off, see ``attestation.kds``) and caches it. Nothing here is trusted: every
byte is checked by the party against its own roots.

Cache layout under ``cache_dir``::

    kds/...                        attestation.kds.KdsClient's mirror of AMD KDS
    tdx/<fmspc>/...                attestation.tdx.collateral's per-platform snapshot
    snp/<CHIP_ID hex>-<REPORTED_TCB hex>.pem
                                   the assembled VEK+ASK+ARK per chip and TCB, and
    snp/crl.der                    the last CRL served: the files
                                   host.collateral.CollateralCache reads
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

from attestation.errors import TcmeError, UnreachableError, UsageError
from attestation.kds import KdsClient, KdsError, atomic_write
from attestation.snp.abi import PRODUCTS, AttestationReport, parse_report
from attestation.tdx.abi import parse_quote
from attestation.tdx.collateral import load_collateral, quote_platform, write_cache
from attestation.tdx.pcs import CollateralService, fetch_collateral

log = logging.getLogger(__name__)

# Products to try, in order, for v2 reports (no CPUID fields): Turin always writes v3+.
V2_PRODUCTS = ("Milan", "Genoa")
SNP_REPORTED_TCB = slice(0x180, 0x188)


class CollateralUnavailable(TcmeError):
    """The collateral for this evidence is neither cached nor (when online) fetchable."""


class CollateralStore:
    """Per-evidence collateral lookups for the host proxy (see the module docstring).

    ``kds``: an ``attestation.kds.KdsClient`` (default: one over ``cache_dir/kds``
    with the same ``offline``); ``pcs``: an ``attestation.tdx.pcs.CollateralService``
    to fetch TDX collateral from when online (default Intel PCS); ``product``:
    the SNP product line when reports do not say (v2 reports).
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        kds: KdsClient | None = None,
        pcs: CollateralService | None = None,
        offline: bool = True,
        product: str | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.offline = offline
        self.kds = kds or KdsClient(self.cache_dir / "kds", offline=offline)
        self.pcs = pcs
        self.product = product

    # -- SEV-SNP ---------------------------------------------------------------------

    def snp_certs_for(self, report_bytes: bytes) -> bytes:
        """PEM of the VEK that signed this report, then its ASK/ASVK, then the ARK.

        Raises ParseError for a malformed report, CollateralUnavailable when the
        certificates are not cached (offline) or KDS does not have them.
        """
        report = parse_report(report_bytes)
        key = _key_kind(report)
        errors: list[str] = []
        for product in self._products(report):
            try:
                vek = self._vek(report, product, key)
                chain = self.kds.cert_chain(product, key=key)
            except KdsError as err:
                errors.append(f"{product}: {err.message()}")
                continue
            pem = ssl.DER_cert_to_PEM_cert(vek).encode("ascii") + chain
            self._publish_snp(report_bytes, report, pem)
            return pem
        raise CollateralUnavailable(
            "collateral.snp",
            f"no {key.upper()} certificates for this report: " + "; ".join(errors),
        )

    def snp_crl_for(self, report_bytes: bytes) -> bytes:
        """The ARK's CRL (DER) for this report's product line."""
        report = parse_report(report_bytes)
        key = _key_kind(report)
        errors: list[str] = []
        for product in self._products(report):
            try:
                crl = self.kds.crl(product, key=key)
            except KdsError as err:
                errors.append(f"{product}: {err.message()}")
                continue
            self._publish(self.cache_dir / "snp" / "crl.der", crl)
            return crl
        raise CollateralUnavailable("collateral.snp_crl", "no CRL: " + "; ".join(errors))

    def _products(self, report: AttestationReport) -> Sequence[str]:
        if self.product is not None:
            return (self.product,)
        named = report.cpuid_product
        if named is not None:
            return (named,)
        if report.version >= 3:
            raise CollateralUnavailable(
                "collateral.product",
                "the report's CPUID family/model names no known product line; "
                "configure the product explicitly",
                expected=PRODUCTS,
                actual=f"family {report.cpuid_fam_id:#x} model {report.cpuid_mod_id:#x}",
            )
        return V2_PRODUCTS

    def _vek(self, report: AttestationReport, product: str, key: str) -> bytes:
        if key == "vlek":
            return self.kds.vlek(product, report.reported_tcb)
        return self.kds.vcek(product, report.chip_id, report.reported_tcb)

    def _publish_snp(self, raw: bytes, report: AttestationReport, pem: bytes) -> None:
        name = f"{report.chip_id.hex()}-{raw[SNP_REPORTED_TCB].hex()}.pem"
        self._publish(self.cache_dir / "snp" / name, pem)

    @staticmethod
    def _publish(path: Path, data: bytes) -> None:
        # Also keep the layout host.collateral.CollateralCache serves from.
        try:
            if not path.is_file() or path.read_bytes() != data:
                atomic_write(path, data)
        except OSError as err:  # a read-only cache still answers
            log.warning("collateral: cannot write %s: %s", path, err.strerror)

    # -- TDX -------------------------------------------------------------------------

    def tdx_collateral_for(self, quote_bytes: bytes) -> bytes:
        """dcap-qvl ``QuoteCollateralV3`` JSON for this quote's platform (FMSPC, PCK CA).

        Raises ParseError for a malformed quote, CollateralUnavailable when the
        platform is not cached (offline) or the service cannot provide it.
        """
        quote = parse_quote(quote_bytes)
        fmspc, ca = quote_platform(quote)
        folder = self.cache_dir / "tdx" / fmspc
        try:
            return load_collateral(self.cache_dir, fmspc=fmspc, ca=ca).to_json().encode()
        except UsageError as err:
            cached_error = err.message()
        if self.offline:
            raise CollateralUnavailable(
                "collateral.tdx",
                f"TDX collateral for FMSPC {fmspc} (PCK CA {ca}) is not in the cache and the "
                f"store is offline: missing {folder} ({cached_error})",
            )
        service = self.pcs if self.pcs is not None else CollateralService.pcs()
        try:
            collateral = fetch_collateral(fmspc, ca=ca, service=service)
        except (UsageError, UnreachableError) as err:
            raise CollateralUnavailable(
                "collateral.tdx", f"cannot fetch TDX collateral for {fmspc}: {err.message()}"
            ) from err
        write_cache(self.cache_dir, collateral)
        return collateral.to_json().encode()


def _key_kind(report: AttestationReport) -> str:
    signer = report.signing_key
    if signer == "VCEK":
        return "vcek"
    if signer == "VLEK":
        return "vlek"
    raise CollateralUnavailable(
        "collateral.signing_key",
        "the report names no endorsement key, so there is no certificate to serve",
        expected="VCEK or VLEK",
        actual=signer,
    )
