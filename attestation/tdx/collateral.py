"""TDX collateral (what dcap-qvl needs beside a quote) and the offline cache that holds it.

Collateral is Intel-signed public data: TCB Info (per platform FMSPC), the TD QE Identity,
the PCK CRL and the Intel SGX Root CA CRL, each with its issuer chain. Nothing here trusts
it: dcap-qvl checks every signature and date at verification time. This module only reads,
converts and stores it, and never touches the network (``attestation.tdx.pcs`` fetches).

Cache layout (written by ``write_cache``; one self-consistent snapshot per FMSPC, so an old
quote's collateral is never mixed with a newer QE Identity or CRL)::

    <cache>/tdx/<fmspc>/                   fmspc: 12 lower-case hex digits
        tcb_info.json                      body of PCS GET /tdx/certification/v4/tcb?fmspc=...
                                           {"tcbInfo":{...},"signature":"<hex r||s>"}
        tcb_info_issuer_chain.pem          its TCB-Info-Issuer-Chain header, URL-decoded
        qe_identity.json                   body of GET /tdx/certification/v4/qe/identity
                                           {"enclaveIdentity":{...},"signature":"<hex>"}
        qe_identity_issuer_chain.pem       its SGX-Enclave-Identity-Issuer-Chain header
        pck_crl_<ca>.der                   body of GET /sgx/certification/v4/pckcrl?ca=<ca>
                                           (ca: platform or processor, DER)
        pck_crl_<ca>_issuer_chain.pem      its SGX-PCK-CRL-Issuer-Chain header
        root_ca_crl.der                    the Intel SGX Root CA CRL (DER)

The signature in tcb_info.json / qe_identity.json covers the exact bytes of the inner
object, so those bytes are cut out of the body verbatim, never re-serialized.

Readers also accept, besides this layout and a dcap-qvl ``QuoteCollateralV3`` JSON file,
a flat folder of PCS responses under other common spellings (``DIRECTORY_SPELLINGS``):
``tcb_info_<fmspc>.json``, chains as PEM or URL-encoded PEM (``*_chain.txt``), CRLs as
``.der``/``.crl`` in DER, PEM or hex.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import dcap_qvl
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation._internal.files import atomic_write
from attestation.errors import ParseError, UsageError
from attestation.tdx.abi import Quote, parse_pem_chain
from attestation.text import parse_hex

CACHE_SUBDIR = "tdx"
PCK_CAS = ("platform", "processor")
_HEX = re.compile(rb"[0-9a-fA-F]+")
_CRL_ISSUER_CA = {
    "Intel SGX PCK Platform CA": "platform",
    "Intel SGX PCK Processor CA": "processor",
}

# The nine fields of dcap-qvl's QuoteCollateralV3 JSON; byte fields are hex strings.
_DCAP_TEXT_FIELDS = (
    "pck_crl_issuer_chain",
    "tcb_info_issuer_chain",
    "tcb_info",
    "qe_identity_issuer_chain",
    "qe_identity",
)
_DCAP_HEX_FIELDS = ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature")
# dcap-qvl may attach the PCK chain it fetched; verification takes it from the quote instead.
_DCAP_OPTIONAL_FIELDS = ("pck_certificate_chain",)

# File names tried, in order, inside a collateral folder. {fmspc} is lower-case hex, {ca}
# platform|processor. The first spelling of each is the cache layout's own.
DIRECTORY_SPELLINGS: dict[str, tuple[str, ...]] = {
    "tcb_info": ("tcb_info.json", "tcb_info_{fmspc}.json"),
    "tcb_info_issuer_chain": (
        "tcb_info_issuer_chain.pem",
        "tcb_info_{fmspc}_issuer_chain.pem",
        "tcb_info_{fmspc}_chain.txt",
        "tcb_info_chain.txt",
    ),
    "qe_identity": ("qe_identity.json",),
    "qe_identity_issuer_chain": ("qe_identity_issuer_chain.pem", "qe_identity_chain.txt"),
    "pck_crl": ("pck_crl_{ca}.der", "pck_crl_{ca}.crl"),
    "pck_crl_issuer_chain": (
        "pck_crl_{ca}_issuer_chain.pem",
        "pck_crl_{ca}_chain.txt",
        "pck_crl_issuer_chain.pem",
    ),
    "root_ca_crl": ("root_ca_crl.der", "root_ca_crl.crl", "root_ca.crl"),
}


@dataclass(frozen=True)
class TdxCollateral:
    """One platform's collateral, in exactly the form dcap-qvl verifies.

    ``tcb_info``/``qe_identity`` are the signed JSON texts (byte-exact), the signatures raw
    64-byte r||s, the CRLs DER, the issuer chains PEM. ``source`` says where it came from.
    """

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes
    source: str = ""

    def __post_init__(self) -> None:
        # Structure checks up front, so a bad file fails here with a name, not deep in dcap-qvl.
        for name in ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain"):
            parse_pem_chain(getattr(self, name).encode(), check=f"collateral.{name}", count=None)
        for name in ("tcb_info_signature", "qe_identity_signature"):
            if len(getattr(self, name)) != 64:
                raise ParseError(
                    f"collateral.{name}",
                    "ECDSA P-256 r||s",
                    expected=64,
                    actual=len(getattr(self, name)),
                )
        _ = self.tcb_info_fields, self.qe_identity_fields, self.pck_crl_ca, self.root_crl

    # --- dcap-qvl ----------------------------------------------------------------------------
    @cached_property
    def dcap(self) -> dcap_qvl.QuoteCollateralV3:
        """The dcap-qvl object (built once per collateral)."""
        return dcap_qvl.QuoteCollateralV3(
            self.pck_crl_issuer_chain,
            self.root_ca_crl,
            self.pck_crl,
            self.tcb_info_issuer_chain,
            self.tcb_info,
            self.tcb_info_signature,
            self.qe_identity_issuer_chain,
            self.qe_identity,
            self.qe_identity_signature,
        )

    def to_json(self) -> str:
        """dcap-qvl's ``QuoteCollateralV3`` JSON (``tcme.v1`` carries it as tdx_collateral_json)."""
        doc: dict[str, str] = {name: getattr(self, name) for name in _DCAP_TEXT_FIELDS}
        doc.update({name: getattr(self, name).hex() for name in _DCAP_HEX_FIELDS})
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "") -> TdxCollateral:
        """Read dcap-qvl's ``QuoteCollateralV3`` JSON, strictly."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise ParseError("collateral.json", f"{source or 'collateral'}: {err}") from err
        if not isinstance(doc, dict):
            raise ParseError("collateral.json", "expected a JSON object", actual=type(doc).__name__)
        known = set(_DCAP_TEXT_FIELDS) | set(_DCAP_HEX_FIELDS) | set(_DCAP_OPTIONAL_FIELDS)
        extra = sorted(set(doc) - known)
        missing = sorted((set(_DCAP_TEXT_FIELDS) | set(_DCAP_HEX_FIELDS)) - set(doc))
        if missing or extra:
            raise ParseError(
                "collateral.json",
                "not a dcap-qvl QuoteCollateralV3 document",
                expected=f"fields {sorted(known)}",
                actual=f"missing {missing}, unknown {extra}",
            )
        fields: dict[str, Any] = {}
        for name in _DCAP_TEXT_FIELDS:
            if not isinstance(doc[name], str):
                raise ParseError(f"collateral.{name}", "expected a string")
            fields[name] = doc[name]
        for name in _DCAP_HEX_FIELDS:
            fields[name] = parse_hex(doc[name], f"collateral.{name}", error=ParseError)
        return cls(**fields, source=source)

    # --- what the collateral says (unverified until dcap-qvl has checked it) -----------------
    @cached_property
    def tcb_info_fields(self) -> dict[str, Any]:
        """The TCB Info JSON object."""
        required = ("fmspc", "issueDate", "nextUpdate")
        return _json_object(self.tcb_info, "collateral.tcb_info", required)

    @cached_property
    def qe_identity_fields(self) -> dict[str, Any]:
        """The QE Identity JSON object."""
        required = ("id", "issueDate", "nextUpdate")
        return _json_object(self.qe_identity, "collateral.qe_identity", required)

    @property
    def fmspc(self) -> str:
        """FMSPC of the TCB Info, lower-case hex."""
        return str(self.tcb_info_fields["fmspc"]).lower()

    @property
    def tcb_evaluation_data_number(self) -> int | None:
        """TCB Info's tcbEvaluationDataNumber (which Intel TCB recovery it reflects)."""
        value = self.tcb_info_fields.get("tcbEvaluationDataNumber")
        return value if isinstance(value, int) else None

    @cached_property
    def pck_crl_ca(self) -> str:
        """ "platform" or "processor": which PCK CA issued the PCK CRL."""
        crl = _load_crl(self.pck_crl, "collateral.pck_crl")
        names = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        issuer = str(names[0].value) if names else ""
        ca = _CRL_ISSUER_CA.get(issuer)
        if ca is None:
            raise ParseError(
                "collateral.pck_crl.issuer",
                "not a PCK CA CRL",
                expected=sorted(_CRL_ISSUER_CA),
                actual=issuer,
            )
        return ca

    @cached_property
    def root_crl(self) -> x509.CertificateRevocationList:
        """The Intel SGX Root CA CRL."""
        return _load_crl(self.root_ca_crl, "collateral.root_ca_crl")

    def validity(self) -> tuple[datetime, datetime]:
        """(latest issue date, earliest next update) over TCB Info, QE Identity and both CRLs.

        Verification can succeed only inside this window (certificates aside).
        """
        pck_crl = _load_crl(self.pck_crl, "collateral.pck_crl")
        starts = [
            _date(self.tcb_info_fields["issueDate"], "tcb_info.issueDate"),
            _date(self.qe_identity_fields["issueDate"], "qe_identity.issueDate"),
            pck_crl.last_update_utc,
            self.root_crl.last_update_utc,
        ]
        ends = [
            _date(self.tcb_info_fields["nextUpdate"], "tcb_info.nextUpdate"),
            _date(self.qe_identity_fields["nextUpdate"], "qe_identity.nextUpdate"),
        ]
        ends += [c.next_update_utc for c in (pck_crl, self.root_crl) if c.next_update_utc]
        return max(starts), min(ends)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for ``tcme collateral show``."""
        start, end = self.validity()
        return {
            "fmspc": self.fmspc,
            "pck_ca": self.pck_crl_ca,
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
            "tcb_info_issue_date": self.tcb_info_fields["issueDate"],
            "tcb_info_next_update": self.tcb_info_fields["nextUpdate"],
            "qe_identity_issue_date": self.qe_identity_fields["issueDate"],
            "qe_identity_next_update": self.qe_identity_fields["nextUpdate"],
            "valid_from": _rfc3339(start),
            "valid_until": _rfc3339(end),
            "source": self.source,
        }


def split_signed_body(body: str, key: str, *, check: str) -> tuple[str, bytes]:
    """Cut ``key``'s value out of a PCS response body verbatim; return it and the signature.

    PCS signs the exact bytes of ``{"tcbInfo": <these bytes>, "signature": ...}``'s value,
    so it must not be re-serialized.
    """
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise ParseError(check, f"not JSON: {err}") from err
    if not isinstance(doc, dict) or set(doc) != {key, "signature"}:
        raise ParseError(
            check,
            "not a PCS signed response",
            expected=f'{{"{key}": ..., "signature": ...}}',
            actual=sorted(doc) if isinstance(doc, dict) else type(doc).__name__,
        )
    if not isinstance(doc["signature"], str):
        raise ParseError(f"{check}.signature", "expected a hex string")
    decoder = json.JSONDecoder()
    pos = _skip_ws(body, 0)
    if body[pos] != "{":
        raise ParseError(check, "expected an object")
    pos += 1
    while True:
        pos = _skip_ws(body, pos)
        name, pos = decoder.raw_decode(body, pos)
        pos = _skip_ws(body, pos)
        if body[pos] != ":":
            raise ParseError(check, f"expected ':' at {pos}")
        start = _skip_ws(body, pos + 1)
        _, end = decoder.raw_decode(body, start)
        if name == key:
            return body[start:end], parse_hex(
                doc["signature"], f"{check}.signature", error=ParseError
            )
        pos = _skip_ws(body, end)
        if body[pos] != ",":  # json.loads above guarantees the key is present
            raise ParseError(check, f"{key} not found")
        pos += 1


def signed_body(key: str, signed_json: str, signature: bytes) -> str:
    """Rebuild a PCS response body around the exact signed bytes (inverse of split_signed_body)."""
    return f'{{"{key}":{signed_json},"signature":"{signature.hex()}"}}'


def collateral_for_quote(source: Path, quote: Quote) -> TdxCollateral:
    """The collateral for this quote's platform from a dcap-qvl JSON file or a folder."""
    fmspc, ca = quote_platform(quote)
    return load_collateral(source, fmspc=fmspc, ca=ca)


def quote_platform(quote: Quote) -> tuple[str, str]:
    """(FMSPC lower-case hex, PCK CA "platform"|"processor") from the quote's PCK certificate."""
    try:
        parsed = dcap_qvl.parse_quote(quote.raw)
        return parsed.fmspc().lower(), parsed.ca()
    except ValueError as err:
        raise ParseError(
            "quote.pck_cert_chain.fmspc", f"cannot read FMSPC/CA from the PCK certificate: {err}"
        ) from err


def load_collateral(source: Path, *, fmspc: str, ca: str = "platform") -> TdxCollateral:
    """Collateral for (fmspc, ca) from a dcap-qvl JSON file, a cache, or a PCS-response folder."""
    fmspc = fmspc.lower()
    if source.is_file():
        try:
            text = source.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError("collateral", f"cannot read {source}: {err}") from err
        collateral = TdxCollateral.from_json(text, source=str(source))
    elif source.is_dir():
        collateral = _load_directory(_platform_dir(source, fmspc), fmspc=fmspc, ca=ca)
    else:
        raise UsageError("collateral", f"{source}: no such file or directory")
    if collateral.fmspc != fmspc:
        raise UsageError(
            "collateral.fmspc",
            f"{source} holds collateral for another platform",
            expected=fmspc,
            actual=collateral.fmspc,
        )
    return collateral


def _platform_dir(source: Path, fmspc: str) -> Path:
    if (source / CACHE_SUBDIR).is_dir():
        source = source / CACHE_SUBDIR
    if (source / fmspc).is_dir():
        return source / fmspc
    return source


def _load_directory(folder: Path, *, fmspc: str, ca: str) -> TdxCollateral:
    def read(item: str) -> bytes:
        names = [n.format(fmspc=fmspc, ca=ca) for n in DIRECTORY_SPELLINGS[item]]
        for name in names:
            path = folder / name
            if path.is_file():
                try:
                    return path.read_bytes()
                except OSError as err:
                    raise UsageError(f"collateral.{item}", f"cannot read {path}: {err}") from err
        raise UsageError(
            f"collateral.{item}",
            f"no {item} for fmspc {fmspc} (PCK CA {ca}) in {folder}; "
            "fetch it with `tcme collateral fetch` or import a dcap-qvl JSON",
            expected="one of " + ", ".join(names),
            actual="none",
        )

    tcb_info, tcb_sig = split_signed_body(
        _text(read("tcb_info"), "collateral.tcb_info"), "tcbInfo", check="collateral.tcb_info"
    )
    qe_identity, qe_sig = split_signed_body(
        _text(read("qe_identity"), "collateral.qe_identity"),
        "enclaveIdentity",
        check="collateral.qe_identity",
    )
    return TdxCollateral(
        pck_crl_issuer_chain=decode_issuer_chain(read("pck_crl_issuer_chain")),
        root_ca_crl=crl_der(read("root_ca_crl"), "collateral.root_ca_crl"),
        pck_crl=crl_der(read("pck_crl"), "collateral.pck_crl"),
        tcb_info_issuer_chain=decode_issuer_chain(read("tcb_info_issuer_chain")),
        tcb_info=tcb_info,
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=decode_issuer_chain(read("qe_identity_issuer_chain")),
        qe_identity=qe_identity,
        qe_identity_signature=qe_sig,
        source=str(folder),
    )


def decode_issuer_chain(raw: bytes | str) -> str:
    """An issuer chain as PEM text, stored as PEM or URL-encoded (as PCS headers send it)."""
    text = _text(raw, "collateral.issuer_chain") if isinstance(raw, bytes) else raw
    # PEM never contains '%'; a PCS header value always does (%0A line breaks at least).
    return urllib.parse.unquote(text) if "%" in text else text


def crl_der(raw: bytes, check: str) -> bytes:
    """A CRL as DER, from DER, PEM, or hex text (PCCS serves the root CA CRL as hex)."""
    stripped = raw.strip()
    if stripped.startswith(b"-----BEGIN X509 CRL-----"):
        try:
            crl = x509.load_pem_x509_crl(stripped)
        except ValueError as err:
            raise ParseError(check, f"bad PEM CRL: {err}") from err
        return crl.public_bytes(Encoding.DER)
    if _HEX.fullmatch(stripped):
        return parse_hex(stripped.decode(), check, error=ParseError)
    _load_crl(raw, check)
    return raw


def write_cache(cache: Path, collateral: TdxCollateral) -> Path:
    """Store collateral under ``<cache>/tdx/<fmspc>/`` (atomically per file); return that folder."""
    ca = collateral.pck_crl_ca
    folder = cache / CACHE_SUBDIR / collateral.fmspc
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | bytes] = {
        "tcb_info.json": signed_body("tcbInfo", collateral.tcb_info, collateral.tcb_info_signature),
        "tcb_info_issuer_chain.pem": collateral.tcb_info_issuer_chain,
        "qe_identity.json": signed_body(
            "enclaveIdentity", collateral.qe_identity, collateral.qe_identity_signature
        ),
        "qe_identity_issuer_chain.pem": collateral.qe_identity_issuer_chain,
        f"pck_crl_{ca}.der": collateral.pck_crl,
        f"pck_crl_{ca}_issuer_chain.pem": collateral.pck_crl_issuer_chain,
        "root_ca_crl.der": collateral.root_ca_crl,
    }
    for name, content in files.items():
        atomic_write(folder / name, content.encode() if isinstance(content, str) else content)
    return folder


def list_cache(cache: Path) -> list[TdxCollateral]:
    """Every platform snapshot in a cache (each PCK CA present), sorted by FMSPC."""
    root = cache / CACHE_SUBDIR
    if not root.is_dir():
        return []
    found: list[TdxCollateral] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for ca in PCK_CAS:
            if (folder / f"pck_crl_{ca}.der").is_file():
                found.append(_load_directory(folder, fmspc=folder.name, ca=ca))
    return found


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    if pos >= len(text):
        raise ParseError("collateral.json", "unexpected end of JSON")
    return pos


def _text(raw: bytes, check: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(check, f"not UTF-8 text: {err}") from err


def _json_object(text: str, check: str, required: tuple[str, ...]) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ParseError(check, f"not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ParseError(check, "expected a JSON object")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ParseError(
            check, "missing fields", expected=list(required), actual=f"missing {missing}"
        )
    return doc


def _load_crl(der: bytes, check: str) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(der)
    except ValueError as err:
        raise ParseError(check, f"not a DER CRL: {err}") from err


def _date(value: object, check: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ParseError(f"collateral.{check}", f"not an RFC 3339 time: {value!r}") from err
    if parsed.tzinfo is None:
        raise ParseError(f"collateral.{check}", "time without a zone", actual=value)
    return parsed


def _rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "CACHE_SUBDIR",
    "DIRECTORY_SPELLINGS",
    "TdxCollateral",
    "collateral_for_quote",
    "crl_der",
    "decode_issuer_chain",
    "list_cache",
    "load_collateral",
    "quote_platform",
    "signed_body",
    "split_signed_body",
    "write_cache",
]
