"""AMD Key Distribution Service (KDS) client with an on-disk cache.

KDS (AMD #57230, "VCEK Certificate and KDS Interface Specification") serves:

* ``/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..``: the
  VCEK (DER) for one chip at one TCB. ``hwid`` is CHIP_ID as hex: all 64 bytes
  on Milan/Genoa, the first 8 bytes on Turin, where the query also starts with
  ``fmcSPL``;
* ``/vcek/v1/{product}/cert_chain`` and ``/vlek/v1/{product}/cert_chain``:
  PEM, the ASK (or ASVK) then the ARK;
* ``/vcek/v1/{product}/crl`` and ``/vlek/v1/{product}/crl``: the ARK's CRL (DER).

A VLEK itself is *not* downloadable: AMD issues it to a cloud provider, which
loads it into its hosts; a guest receives it in the certificate table
(configfs-tsm ``auxblob`` / SNP_GET_EXT_REPORT). Fetching one from KDS needs
the provider's VLEK hashstick, which tcme never has. Put a VLEK into the cache
by hand (``vlek/v1/{product}/{tcb}.der``) if the evidence does not carry it.

KDS rate-limits clients (HTTP 429). This client leaves at least
``min_interval_s`` (default 2 s) between requests, retries 429/503 with
exponential backoff honouring ``Retry-After``, and never retries for longer
than ``max_wait_s``. Everything fetched is checked (it parses; a VCEK's hwID
and TCB match what was asked) and then cached; with ``offline=True`` the
network is never touched and a miss names the cache file that is missing.

Fetched material is not trusted here: verifiers check it against pinned AMD roots.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from attestation._internal.files import atomic_write
from attestation.errors import ParseError, SignatureError, TcmeError
from attestation.snp import _x509
from attestation.snp.abi import TcbVersion

KDS_BASE_URL = "https://kdsintf.amd.com"
PRODUCTS = ("Milan", "Genoa", "Turin")
KEY_TYPES = ("vcek", "vlek")
USER_AGENT = "tcme-kds-client/1"

RETRY_STATUSES = (429, 503)


class KdsError(TcmeError):
    """KDS did not give us the object, or the cache does not have it in offline mode."""


@dataclass
class _Pacer:
    """Keeps requests at least ``interval`` seconds apart (KDS's burst limits)."""

    interval: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    last: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.last is not None:
            remaining = self.last + self.interval - now
            if remaining > 0:
                self.sleep(remaining)
                now = self.clock()
        self.last = now


def normalize_product(product: str) -> str:
    """``milan`` -> ``Milan``; raises KdsError for a product KDS does not serve."""
    for known in PRODUCTS:
        if product.lower() == known.lower():
            return known
    raise KdsError("kds.product", "unknown SEV-SNP product", expected=PRODUCTS, actual=product)


def kds_hwid(product: str, chip_id: bytes) -> bytes:
    """The hwID KDS wants: CHIP_ID, cut to its first 8 bytes on Turin."""
    if normalize_product(product) == "Turin":
        if len(chip_id) not in (8, 64):
            raise KdsError("kds.hwid", "Turin hwID is 8 bytes", expected=8, actual=len(chip_id))
        return chip_id[:8]
    if len(chip_id) != 64:
        raise KdsError(
            "kds.hwid", "hwID must be the 64-byte CHIP_ID", expected=64, actual=len(chip_id)
        )
    return chip_id


def tcb_query(product: str, tcb: TcbVersion) -> str:
    """The SPL query string (``blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68``; Turin adds fmcSPL)."""
    parts = []
    if normalize_product(product) == "Turin":
        if tcb.fmc is None:
            raise KdsError("kds.tcb", "a Turin VCEK needs the FMC SPL", expected="fmc", actual=None)
        parts.append(f"fmcSPL={tcb.fmc}")
    parts += [
        f"blSPL={tcb.bootloader}",
        f"teeSPL={tcb.tee}",
        f"snpSPL={tcb.snp}",
        f"ucodeSPL={tcb.microcode}",
    ]
    return "&".join(parts)


def tcb_file_stem(product: str, tcb: TcbVersion) -> str:
    """A filename for one TCB: ``bl2-tee0-snp5-ucode68`` (Turin: ``fmc1-...``)."""
    return tcb_query(product, tcb).replace("SPL=", "").replace("&", "-")


class KdsClient:
    """Fetch-and-cache access to AMD KDS.

    Cache layout under ``cache_dir`` mirrors the KDS paths::

        vcek/v1/{product}/{hwid hex}/{tcb stem}.der   VCEK
        vcek/v1/{product}/cert_chain.pem               ASK + ARK
        vcek/v1/{product}/crl.der                      CRL
        vlek/v1/{product}/cert_chain.pem               ASVK + ARK
        vlek/v1/{product}/crl.der                      CRL
        vlek/v1/{product}/{tcb stem}.der               VLEK (placed by an operator)

    ``clock``/``sleep`` are injectable so tests can observe pacing and backoff
    without waiting.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        base_url: str = KDS_BASE_URL,
        offline: bool = False,
        min_interval_s: float = 2.0,
        max_attempts: int = 6,
        backoff_s: float = 2.0,
        max_wait_s: float = 120.0,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.base_url = base_url.rstrip("/")
        self.offline = offline
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._pacer = _Pacer(min_interval_s, clock, sleep)
        self.requests_made = 0  # HTTP requests sent (observability for operators and tests)

    # -- cache paths ----------------------------------------------------------

    def vcek_path(self, product: str, hwid: bytes, tcb: TcbVersion) -> Path:
        """Cache file of one VCEK."""
        product = normalize_product(product)
        hwid = kds_hwid(product, hwid)
        stem = tcb_file_stem(product, tcb)
        return self.cache_dir / "vcek" / "v1" / product / hwid.hex() / f"{stem}.der"

    def chain_path(self, product: str, *, key: str = "vcek") -> Path:
        """Cache file of the ASK/ASVK + ARK chain."""
        return self.cache_dir / _key(key) / "v1" / normalize_product(product) / "cert_chain.pem"

    def crl_path(self, product: str, *, key: str = "vcek") -> Path:
        """Cache file of the product's CRL."""
        return self.cache_dir / _key(key) / "v1" / normalize_product(product) / "crl.der"

    def vlek_path(self, product: str, tcb: TcbVersion) -> Path:
        """Where an operator puts a VLEK for ``tcb`` (KDS does not serve VLEKs)."""
        product = normalize_product(product)
        return self.cache_dir / "vlek" / "v1" / product / f"{tcb_file_stem(product, tcb)}.der"

    # -- objects --------------------------------------------------------------

    def vcek(self, product: str, chip_id: bytes, tcb: TcbVersion) -> bytes:
        """The VCEK (DER) for ``chip_id`` at ``tcb``: from the cache, else from KDS."""
        product = normalize_product(product)
        hwid = kds_hwid(product, chip_id)
        path = self.vcek_path(product, hwid, tcb)
        url = f"{self.base_url}/vcek/v1/{product}/{hwid.hex()}?{tcb_query(product, tcb)}"

        def check(body: bytes) -> None:
            _check_vcek(body, hwid, tcb)

        return self._cached_or_fetch(path, url, check, what=f"{product} VCEK")

    def cert_chain(self, product: str, *, key: str = "vcek") -> bytes:
        """The ASK (``vcek``) or ASVK (``vlek``) followed by the ARK, as PEM."""
        product = normalize_product(product)
        url = f"{self.base_url}/{_key(key)}/v1/{product}/cert_chain"
        return self._cached_or_fetch(
            self.chain_path(product, key=key), url, _check_chain, what=f"{product} {key} chain"
        )

    def crl(self, product: str, *, key: str = "vcek") -> bytes:
        """The ARK's certificate revocation list (DER)."""
        product = normalize_product(product)
        url = f"{self.base_url}/{_key(key)}/v1/{product}/crl"
        return self._cached_or_fetch(
            self.crl_path(product, key=key), url, _check_crl, what=f"{product} CRL"
        )

    def vlek(self, product: str, tcb: TcbVersion) -> bytes:
        """A VLEK the operator placed in the cache; KDS never serves one to us."""
        path = self.vlek_path(product, tcb)
        if path.is_file():
            return path.read_bytes()
        raise KdsError(
            "kds.vlek",
            f"no VLEK at {path}. AMD KDS hands VLEKs only to the cloud provider holding the "
            "VLEK hashstick; the guest gets it in the certificate table of its report "
            "(configfs-tsm auxblob / SNP_GET_EXT_REPORT). Copy it from there into the cache",
        )

    # -- machinery ------------------------------------------------------------

    def _cached_or_fetch(
        self, path: Path, url: str, check: Callable[[bytes], None], *, what: str
    ) -> bytes:
        if path.is_file():
            return path.read_bytes()
        if self.offline:
            raise KdsError(
                "kds.cache",
                f"{what} is not in the cache and the client is offline: missing {path} "
                f"(fetch it from {url} on a connected machine, or run without offline mode)",
            )
        body = self._get(url, what=what)
        try:
            check(body)
        except (ParseError, SignatureError, ValueError) as err:
            detail = err.message() if isinstance(err, TcmeError) else str(err)
            raise KdsError("kds.response", f"{what} from {url} is not usable: {detail}") from err
        atomic_write(path, body)
        return body

    def _get(self, url: str, *, what: str) -> bytes:
        waited = 0.0
        last_error = ""
        for attempt in range(self.max_attempts):
            self._pacer.wait()
            self.requests_made += 1
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return response.read()
            except urllib.error.HTTPError as err:
                with contextlib.closing(err):
                    if err.code not in RETRY_STATUSES:
                        raise KdsError(
                            "kds.http",
                            f"KDS answered {err.code} {err.reason} for {what}",
                            expected=200,
                            actual=err.code,
                        ) from None
                    delay = _retry_after(err.headers.get("Retry-After"))
                    last_error = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                delay = None
                last_error = f"network error: {reason}"
            if delay is None:
                delay = self.backoff_s * (2**attempt)
            if attempt + 1 == self.max_attempts:
                break
            if waited + delay > self.max_wait_s:
                raise KdsError(
                    "kds.rate_limited",
                    f"KDS asks to wait {delay:.0f}s more for {what}, past the "
                    f"{self.max_wait_s:.0f}s this client allows ({last_error})",
                )
            self._sleep(delay)
            waited += delay
        raise KdsError(
            "kds.unavailable",
            f"gave up on {what} after {self.max_attempts} attempts ({last_error})",
        )


def _key(key: str) -> str:
    if key not in KEY_TYPES:
        raise KdsError("kds.key", "unknown key type", expected=KEY_TYPES, actual=key)
    return key


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _check_vcek(body: bytes, hwid: bytes, tcb: TcbVersion) -> None:
    cert = _x509.load_certificate_der(body)
    raw_hwid = _x509.extension_value(cert, _x509.OID_HWID)
    got = _x509.hwid_bytes(raw_hwid) if raw_hwid is not None else None
    if got is None or got[: len(hwid)] != hwid:
        raise ValueError(f"hwID {got.hex() if got else None} is not the requested {hwid.hex()}")
    for name, value in tcb.components().items():
        raw = _x509.extension_value(cert, _x509.TCB_EXTENSIONS[name])
        have = _x509.der_integer(raw, f"vcek.{name}") if raw is not None else None
        if have != value:
            raise ValueError(f"{name} SPL {have} is not the requested {value}")


def _check_chain(body: bytes) -> None:
    ders = _x509.split_certificates(body)
    if len(ders) != 2:
        raise ValueError(f"cert_chain holds {len(ders)} certificates, expected ASK/ASVK and ARK")
    for der in ders:
        _x509.load_certificate_der(der)


def _check_crl(body: bytes) -> None:
    x509.load_der_x509_crl(body)
