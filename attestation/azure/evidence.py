"""Azure vTPM evidence in the JSON form the CoCo attestation agent and Trustee use.

Three versions (Trustee ``az_snp_vtpm``/``az_tdx_vtpm`` ``compat``; vectors
README section 4.0), all read here and told apart by ``version``:

* v0 (no ``version``): ``{"quote"|"tpm_quote": {"signature", "message",
  "pcrs"}, "report"|"hcl_report": …, "vcek": "<PEM>", "td_quote": …}``, every
  binary field a JSON array of byte numbers (``pcrs``: an array of arrays);
* v1 and v2 (``"version": 1|2``): the ``tpm_quote`` fields in hex (``pcrs``: an
  array of hex strings), ``hcl_report``, ``vcek`` (DER) and ``td_quote`` in
  base64url (padded or not). v2 also binds the nonce into the runtime data's
  ``user-data`` (the verifier checks that it starts with the nonce).

``vcek`` is SEV-SNP only and ``td_quote`` TDX only. tcme writes v1, leaving
``vcek`` out when the host proxy serves it as collateral. Unknown keys are
refused, so nothing is silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attestation.errors import ParseError
from attestation.text import no_duplicate_keys, parse_hex

MAX_EVIDENCE_JSON = 1024 * 1024
PCR_COUNT = 24
VERSIONS = (0, 1, 2)

_B64URL = re.compile(r"\A[A-Za-z0-9_-]*(?:={1,2})?\Z")
_V0_KEYS = {"quote", "tpm_quote", "report", "hcl_report", "vcek", "td_quote"}
_V1_KEYS = {"version", "tpm_quote", "hcl_report", "vcek", "td_quote"}
_QUOTE_KEYS = {"signature", "message", "pcrs"}


@dataclass(frozen=True)
class AzureEvidence:
    """The parts of one Azure vTPM evidence, decoded but not parsed or verified.

    ``vcek``: DER or PEM exactly as carried (SEV-SNP), None when absent.
    """

    version: int
    hcl_report: bytes
    quote_message: bytes
    quote_signature: bytes
    pcrs: tuple[bytes, ...]
    vcek: bytes | None = None
    td_quote: bytes | None = None

    def to_json(self) -> bytes:
        """The v1 (or v2) JSON bytes of this evidence; v0 is written as v1."""
        out: dict[str, Any] = {
            "version": max(self.version, 1),
            "tpm_quote": {
                "signature": self.quote_signature.hex(),
                "message": self.quote_message.hex(),
                "pcrs": [p.hex() for p in self.pcrs],
            },
            "hcl_report": _b64url(self.hcl_report),
        }
        if self.vcek is not None:
            out["vcek"] = _b64url(_der(self.vcek))
        if self.td_quote is not None:
            out["td_quote"] = _b64url(self.td_quote)
        return json.dumps(out, separators=(",", ":")).encode()


def looks_like_azure_evidence(data: bytes) -> bool:
    """True when ``data`` is a JSON object: the only JSON evidence tcme reads is Azure's.

    ``parse_azure_evidence`` then decides, strictly, whether it really is.
    """
    return bytes(data[:64]).lstrip()[:1] == b"{"


def parse_azure_evidence(data: bytes) -> AzureEvidence:
    """Decode the JSON; ``ParseError`` (``azure.evidence.*``) on any deviation."""
    return _parse_cached(bytes(data))


def clear_parse_cache() -> None:
    """Forget parsed evidence (benchmarks measure a cold parse)."""
    _parse_cached.cache_clear()


@functools.lru_cache(maxsize=16)
def _parse_cached(data: bytes) -> AzureEvidence:
    # Detection and verification both parse the same bytes; the result is immutable.
    if len(data) > MAX_EVIDENCE_JSON:
        raise ParseError(
            "azure.evidence.size", "too large", expected=f"<= {MAX_EVIDENCE_JSON}", actual=len(data)
        )
    try:
        doc = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=no_duplicate_keys("azure.evidence.duplicate_key"),
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParseError("azure.evidence.json", "not UTF-8 JSON", actual=str(err)[:120]) from err
    if not isinstance(doc, dict):
        raise ParseError("azure.evidence.json", "not a JSON object", actual=type(doc).__name__)
    version = doc.get("version", 0)
    if type(version) is not int or version not in VERSIONS:
        raise ParseError(
            "azure.evidence.version", "unsupported version", expected="0, 1 or 2", actual=version
        )
    if version == 0:
        return _parse_v0(doc)
    _known(doc, _V1_KEYS, "azure.evidence")
    quote = _quote_table(doc.get("tpm_quote"))
    return AzureEvidence(
        version=version,
        hcl_report=_b64(doc.get("hcl_report"), "azure.evidence.hcl_report"),
        quote_message=_hex(quote["message"], "azure.evidence.tpm_quote.message"),
        quote_signature=_hex(quote["signature"], "azure.evidence.tpm_quote.signature"),
        pcrs=_pcrs(quote["pcrs"], _hex),
        vcek=_b64(doc["vcek"], "azure.evidence.vcek") if "vcek" in doc else None,
        td_quote=_b64(doc["td_quote"], "azure.evidence.td_quote") if "td_quote" in doc else None,
    )


def _parse_v0(doc: Mapping[str, Any]) -> AzureEvidence:
    _known(doc, _V0_KEYS, "azure.evidence")
    quote = _quote_table(_one_of(doc, "tpm_quote", "quote"))
    vcek = doc.get("vcek")
    if vcek is not None and not isinstance(vcek, str):
        raise ParseError(
            "azure.evidence.vcek", "v0 carries the VCEK as PEM text", actual=type(vcek)
        )
    return AzureEvidence(
        version=0,
        hcl_report=_byte_list(_one_of(doc, "hcl_report", "report"), "azure.evidence.hcl_report"),
        quote_message=_byte_list(quote["message"], "azure.evidence.tpm_quote.message"),
        quote_signature=_byte_list(quote["signature"], "azure.evidence.tpm_quote.signature"),
        pcrs=_pcrs(quote["pcrs"], _byte_list),
        vcek=vcek.encode() if vcek is not None else None,
        td_quote=(
            _byte_list(doc["td_quote"], "azure.evidence.td_quote") if "td_quote" in doc else None
        ),
    )


def _one_of(doc: Mapping[str, Any], name: str, alias: str) -> Any:
    if name in doc and alias in doc:
        raise ParseError(
            f"azure.evidence.{name}", f"both {name!r} and its alias {alias!r}", actual="both"
        )
    if name not in doc and alias not in doc:
        raise ParseError(f"azure.evidence.{name}", "missing", expected=name, actual="absent")
    return doc[name] if name in doc else doc[alias]


def _quote_table(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ParseError("azure.evidence.tpm_quote", "missing or not an object", actual=type(value))
    _known(value, _QUOTE_KEYS, "azure.evidence.tpm_quote")
    missing = sorted(_QUOTE_KEYS - set(value))
    if missing:
        raise ParseError(
            f"azure.evidence.tpm_quote.{missing[0]}",
            "missing",
            expected=missing[0],
            actual="absent",
        )
    return value


def _pcrs(value: Any, decode: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) != PCR_COUNT:
        raise ParseError(
            "azure.evidence.tpm_quote.pcrs",
            "not a list of the 24 PCR values",
            expected=PCR_COUNT,
            actual=len(value) if isinstance(value, list) else type(value).__name__,
        )
    return tuple(decode(v, f"azure.evidence.tpm_quote.pcrs[{i}]") for i, v in enumerate(value))


def _known(doc: Mapping[str, Any], known: set[str], check: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ParseError(
            f"{check}.{unknown[0]}",
            "unknown key (nothing is silently ignored)",
            expected="one of " + ", ".join(sorted(known)),
            actual=unknown[0],
        )


def _byte_list(value: Any, check: str) -> bytes:
    # Exactly ints (not booleans, floats or strings), each 0..255 (bytes() checks the range).
    if isinstance(value, list) and set(map(type, value)) <= {int}:
        try:
            return bytes(value)
        except ValueError:
            pass
    raise ParseError(check, "not a JSON array of byte values", actual=repr(value)[:40])


def _hex(value: Any, check: str) -> bytes:
    # A field of a JSON document: exactly one spelling (no padding whitespace).
    return parse_hex(value, check, error=ParseError, exact=True)


def _b64(value: Any, check: str) -> bytes:
    """base64url, padded (what Trustee's own files carry) or not (what the agent writes)."""
    padded = isinstance(value, str) and value.endswith("=")
    if (
        not isinstance(value, str)
        or not _B64URL.match(value)
        or (padded and len(value) % 4)
        or (not padded and len(value) % 4 == 1)
    ):
        raise ParseError(check, "not base64url", actual=repr(value)[:40])
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ParseError(check, "not base64url", actual=repr(value)[:40]) from err


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _der(cert: bytes) -> bytes:
    if cert.lstrip().startswith(b"-----BEGIN"):
        from attestation.snp import _x509

        return _x509.split_certificates(cert)[0]
    return cert
