"""Evidence inside a Confidential Containers (CoCo) pod, from the CoCo attestation agent.

In a CoCo pod VM (Kata runtime classes ``kata-qemu-snp``, ``kata-qemu-tdx``, or
peer pods) the workload container sees no ``/dev/sev-guest`` and no
configfs-tsm: the guest's attestation agent (confidential-containers/
guest-components) owns the hardware interface. Containers reach it through
guest-components' ``api-server-rest``, which listens on 127.0.0.1:8006 in the
pod and answers loopback callers only (it must run with ``--features
attestation`` or ``all``).

What this provider relies on, read from guest-components (api-server-rest
``router.rs``/``utils.rs``, attestation-agent ``lib.rs``, attester ``snp``/``tdx``):

1. ``GET /aa/evidence?runtime_data=<URL-safe base64, no padding>&encoding=base64``
   returns the primary attester's evidence as JSON (``application/octet-stream``).
   Without ``encoding=base64`` the raw UTF-8 of the query value is used, which
   cannot carry 64 binary bytes, so we always send ``encoding=base64``; an agent
   too old to know it fails the REPORT_DATA check below instead of passing.
2. The attestation agent hands ``runtime_data`` to the attester unchanged (no
   hash); the SNP and TDX attesters refuse more than 64 bytes and zero-pad to 64.
   tcme sends exactly its 64-byte REPORT_DATA, so REPORT_DATA = runtime_data.
3. SNP evidence: ``{"attestation_report": <virtee/sev 6.x AttestationReport as
   serde JSON>, "cert_chain": null | [{"cert_type": "VCEK"|"VLEK"|"ASK"|"ARK"|...,
   "data": [DER bytes]}]}``. The report arrives as fields, not bytes, so it is
   re-encoded here at AMD's offsets (``attestation.snp.abi``); reserved bytes
   are zero by the ABI, so the bytes come out as the firmware signed them, and
   any difference fails the VCEK signature at every verifier.
4. TDX evidence: ``{"cc_eventlog": null | base64, "quote": <standard base64 of
   the DCAP quote>}``; the quote is used as is, the event log is not needed.
5. ``GET /info`` (newer agents) says ``{"version", "tee", "additional_tees"}``;
   ``tcme doctor`` shows it, evidence never depends on it.

Whatever the agent returns is checked here for size and REPORT_DATA (a wrong
answer fails at the source) and verified by every party as usual: the agent
is inside the TEE's trust boundary, but nothing it says is taken on faith.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from attestation.errors import ParseError
from attestation.providers._blobs import check_report_data, check_snp_report, check_tdx_quote
from attestation.providers.base import Evidence
from attestation.providers.cert_table import to_pem
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.snp.abi import (
    AttestationReport,
    KeyInfo,
    TcbVersion,
    parse_report,
)

DEFAULT_URL = "http://127.0.0.1:8006"
URL_ENV = "TCME_COCO_AA_URL"
EVIDENCE_PATH = "/aa/evidence"
INFO_PATH = "/info"
# Generous for an SNP report plus a certificate chain as JSON number arrays (~60 KiB)
# or a TDX quote plus a CC event log; anything larger is not evidence.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Hardware report generation through the agent takes well under a second; the agent's
# own ttRPC timeout is 50 s, which a party's Attest deadline would not survive.
DEFAULT_TIMEOUT = 10.0
PROBE_TIMEOUT = 1.0
# The agent's names for the TEEs tcme verifies (kbs-types ``Tee``, serialised lowercase).
AGENT_TEES = {"snp": "sev-snp", "tdx": "tdx"}


def agent_url() -> str:
    """The api-server-rest base URL: ``$TCME_COCO_AA_URL`` or http://127.0.0.1:8006."""
    return os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")


def _get(url: str, timeout: float) -> bytes:
    """One GET; ProviderUnavailable when nothing answers, ProviderError on a bad answer."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as err:
        text = err.read(200).decode("utf-8", "replace").strip()
        if err.code == 404 and "Not Enabled" in text:
            raise ProviderUnavailable(
                "coco_aa.feature",
                "api-server-rest runs without its attestation feature "
                "(start it with --features attestation or all)",
            ) from None
        raise ProviderError(
            "coco_aa.http",
            f"the attestation agent's API answered HTTP {err.code}",
            expected=200,
            actual=f"{err.code} {text[:120]}",
        ) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ProviderUnavailable(
            "coco_aa.connect",
            f"no CoCo attestation agent API at {url.split('?', 1)[0]} ({reason}); "
            "not a CoCo pod, or api-server-rest is not running",
        ) from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProviderError(
            "coco_aa.size",
            "the attestation agent's answer is too large",
            expected=f"<= {MAX_RESPONSE_BYTES} bytes",
            actual=f"> {MAX_RESPONSE_BYTES} bytes",
        )
    return body


class CocoAgentProvider:
    """``EvidenceProvider`` backed by the CoCo attestation agent's REST API.

    ``tee`` is learned from the first evidence (or from ``/info`` by ``probe``);
    ``url`` defaults to ``agent_url()``.
    """

    name = "coco-aa"
    simulated = False

    def __init__(self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = (url or agent_url()).rstrip("/")
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme not in ("http", "https"):
            raise ProviderUnavailable(
                "coco_aa.url", "the agent URL must be http(s)", actual=self.url
            )
        self.timeout = timeout
        self.tee: str = ""
        self.info: dict[str, Any] = {}

    def probe(self) -> str:
        """Ask ``/info`` which TEE the agent serves; returns tcme's TEE name.

        Raises ProviderUnavailable when no agent answers or it serves a TEE
        tcme does not verify. An agent without ``/info`` (404) is taken as
        reachable with its TEE unknown until the first evidence.
        """
        try:
            body = _get(self.url + INFO_PATH, PROBE_TIMEOUT)
        except ProviderUnavailable:
            raise
        except ProviderError as err:
            if "404" in str(err.actual):
                self.info = {}
                return ""
            raise ProviderUnavailable("coco_aa.info", err.message()) from None
        try:
            info = json.loads(body)
        except ValueError:
            raise ProviderUnavailable("coco_aa.info", "/info is not JSON") from None
        self.info = info if isinstance(info, dict) else {}
        agent_tee = self.info.get("tee")
        if agent_tee is None:
            raise ProviderUnavailable(
                "coco_aa.feature",
                "api-server-rest reports no TEE: its attestation feature is off "
                "(start it with --features attestation or all)",
            )
        tee = AGENT_TEES.get(str(agent_tee).lower())
        if tee is None:
            raise ProviderUnavailable(
                "coco_aa.tee",
                "the attestation agent serves a TEE tcme does not verify",
                expected=" or ".join(AGENT_TEES),
                actual=agent_tee,
            )
        self.tee = tee
        return tee

    def get_evidence(self, report_data: bytes) -> Evidence:
        """Evidence whose REPORT_DATA is exactly ``report_data`` (64 bytes)."""
        report_data = check_report_data(report_data)
        query = urllib.parse.urlencode(
            {
                "runtime_data": base64.urlsafe_b64encode(report_data).rstrip(b"=").decode(),
                "encoding": "base64",
            }
        )
        body = _get(f"{self.url}{EVIDENCE_PATH}?{query}", self.timeout)
        evidence = evidence_from_agent_json(body, report_data)
        self.tee = evidence.tee
        return evidence


def evidence_from_agent_json(body: bytes, report_data: bytes) -> Evidence:
    """Turn the agent's evidence JSON into tcme ``Evidence`` checked against ``report_data``."""
    try:
        document = json.loads(body)
    except ValueError:
        raise ProviderError("coco_aa.json", "the agent's evidence is not JSON") from None
    if not isinstance(document, dict):
        raise ProviderError("coco_aa.json", "the agent's evidence is not a JSON object")
    if "attestation_report" in document:
        raw = snp_report_from_json(document["attestation_report"])
        raw = check_snp_report(raw, report_data, source="coco_aa")
        certs = _cert_chain_pem(document.get("cert_chain"), vlek=parse_report(raw).signing_key)
        return Evidence(tee="sev-snp", raw=raw, certs=certs, provider=CocoAgentProvider.name)
    if "quote" in document:
        quote = document["quote"]
        if not isinstance(quote, str):
            raise ProviderError("coco_aa.tdx.quote", "quote must be a base64 string")
        try:
            raw = base64.b64decode(quote, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError("coco_aa.tdx.quote", "quote is not valid base64") from None
        raw = check_tdx_quote(raw, report_data, source="coco_aa")
        return Evidence(tee="tdx", raw=raw, provider=CocoAgentProvider.name)
    raise ProviderError(
        "coco_aa.tee",
        "the agent's evidence is neither SEV-SNP nor TDX",
        expected="attestation_report (SNP) or quote (TDX)",
        actual=",".join(sorted(document)[:6]) or "(empty object)",
    )


# -- SNP: virtee/sev 6.x serde JSON -> the 1184-byte ABI report ------------------------


def _field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise ProviderError(f"coco_aa.snp.{name}", f"{where} lacks field {name!r}")
    return obj[name]


def _uint(value: Any, bits: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ProviderError(
            f"coco_aa.snp.{name}",
            "not an unsigned integer of the right width",
            expected=f"0..2^{bits}-1",
            actual=repr(value)[:40],
        )
    return value


def _opt_uint(value: Any, bits: int, name: str) -> int | None:
    return None if value is None else _uint(value, bits, name)


def _bytes(value: Any, size: int, name: str) -> bytes:
    """A serde ``Array<u8, N>`` / ``Vec<u8>``: a JSON list of byte values."""
    if not isinstance(value, list) or (size >= 0 and len(value) != size):
        raise ProviderError(
            f"coco_aa.snp.{name}",
            "not a byte array of the right length",
            expected=size if size >= 0 else "a list of bytes",
            actual=len(value) if isinstance(value, list) else type(value).__name__,
        )
    return bytes(_uint(b, 8, name) for b in value)


def _tcb(value: Any, name: str) -> TcbVersion:
    if not isinstance(value, dict):
        raise ProviderError(f"coco_aa.snp.{name}", "TCB version must be an object")
    return TcbVersion.from_components(
        fmc=_opt_uint(value.get("fmc"), 8, f"{name}.fmc"),
        bootloader=_uint(_field(value, "bootloader", name), 8, f"{name}.bootloader"),
        tee=_uint(_field(value, "tee", name), 8, f"{name}.tee"),
        snp=_uint(_field(value, "snp", name), 8, f"{name}.snp"),
        microcode=_uint(_field(value, "microcode", name), 8, f"{name}.microcode"),
    )


def _version(value: Any, name: str) -> tuple[int, int, int]:
    if not isinstance(value, dict):
        raise ProviderError(f"coco_aa.snp.{name}", "firmware version must be an object")
    return (
        _uint(_field(value, "build", name), 8, f"{name}.build"),
        _uint(_field(value, "minor", name), 8, f"{name}.minor"),
        _uint(_field(value, "major", name), 8, f"{name}.major"),
    )


def snp_report_from_json(value: Any) -> bytes:
    """The raw ATTESTATION_REPORT for virtee/sev's serde form of ``AttestationReport``.

    Field names and shapes are those of sev 6.x (the version guest-components
    pins): byte arrays as lists, ``policy``/``plat_info``/``key_info`` as
    integers, TCB versions as ``{fmc, bootloader, tee, snp, microcode}`` (``fmc``
    set only on Turin), firmware versions as ``{major, minor, build}``, the
    signature as ``{r, s}`` (72 bytes each, little-endian as in the report).
    The result is parsed strictly (``parse_report``) before it is returned.
    """
    if not isinstance(value, dict):
        raise ProviderError("coco_aa.snp.report", "attestation_report must be an object")
    f = value
    signature = _field(f, "signature", "attestation_report")
    if not isinstance(signature, dict):
        raise ProviderError("coco_aa.snp.signature", "signature must be an object")
    version = _uint(_field(f, "version", "attestation_report"), 32, "version")
    current = _version(_field(f, "current", "attestation_report"), "current")
    committed = _version(_field(f, "committed", "attestation_report"), "committed")
    report = AttestationReport(
        version=version,
        guest_svn=_uint(_field(f, "guest_svn", "report"), 32, "guest_svn"),
        policy=_uint(_field(f, "policy", "report"), 64, "policy"),
        family_id=_bytes(_field(f, "family_id", "report"), 16, "family_id"),
        image_id=_bytes(_field(f, "image_id", "report"), 16, "image_id"),
        vmpl=_uint(_field(f, "vmpl", "report"), 32, "vmpl"),
        signature_algo=_uint(_field(f, "sig_algo", "report"), 32, "sig_algo"),
        current_tcb=_tcb(_field(f, "current_tcb", "report"), "current_tcb"),
        platform_info=_uint(_field(f, "plat_info", "report"), 64, "plat_info"),
        key_info=KeyInfo.from_raw(_uint(_field(f, "key_info", "report"), 32, "key_info")),
        report_data=_bytes(_field(f, "report_data", "report"), 64, "report_data"),
        measurement=_bytes(_field(f, "measurement", "report"), 48, "measurement"),
        host_data=_bytes(_field(f, "host_data", "report"), 32, "host_data"),
        id_key_digest=_bytes(_field(f, "id_key_digest", "report"), 48, "id_key_digest"),
        author_key_digest=_bytes(_field(f, "author_key_digest", "report"), 48, "author_key_digest"),
        report_id=_bytes(_field(f, "report_id", "report"), 32, "report_id"),
        report_id_ma=_bytes(_field(f, "report_id_ma", "report"), 32, "report_id_ma"),
        reported_tcb=_tcb(_field(f, "reported_tcb", "report"), "reported_tcb"),
        cpuid_fam_id=_opt_uint(f.get("cpuid_fam_id"), 8, "cpuid_fam_id"),
        cpuid_mod_id=_opt_uint(f.get("cpuid_mod_id"), 8, "cpuid_mod_id"),
        cpuid_step=_opt_uint(f.get("cpuid_step"), 8, "cpuid_step"),
        chip_id=_bytes(_field(f, "chip_id", "report"), 64, "chip_id"),
        committed_tcb=_tcb(_field(f, "committed_tcb", "report"), "committed_tcb"),
        current_build=current[0],
        current_minor=current[1],
        current_major=current[2],
        committed_build=committed[0],
        committed_minor=committed[1],
        committed_major=committed[2],
        launch_tcb=_tcb(_field(f, "launch_tcb", "report"), "launch_tcb"),
        launch_mit_vector=_opt_uint(f.get("launch_mit_vector"), 64, "launch_mit_vector"),
        current_mit_vector=_opt_uint(f.get("current_mit_vector"), 64, "current_mit_vector"),
        signature_r=_bytes(_field(signature, "r", "signature"), 72, "signature.r"),
        signature_s=_bytes(_field(signature, "s", "signature"), 72, "signature.s"),
    )
    raw = report.to_bytes()
    try:
        parse_report(raw)
    except ParseError as err:
        raise ProviderError(
            "coco_aa.snp.report", f"the re-encoded report does not parse: {err.message()}"
        ) from None
    return raw


def _cert_type(value: Any) -> str:
    # serde's unit variants are strings ("VCEK"); OTHER(uuid) is {"OTHER": "..."}.
    return value if isinstance(value, str) else "OTHER"


def _cert_chain_pem(chain: Any, *, vlek: str) -> bytes:
    """PEM of VEK, ASK/ASVK, ARK from the agent's ``cert_chain`` (absent parts skipped)."""
    if chain is None:
        return b""
    if not isinstance(chain, list):
        raise ProviderError("coco_aa.snp.cert_chain", "cert_chain must be a list or null")
    found: dict[str, bytes] = {}
    for entry in chain:
        if not isinstance(entry, dict):
            raise ProviderError("coco_aa.snp.cert_chain", "cert_chain entries must be objects")
        kind = _cert_type(entry.get("cert_type"))
        data = _bytes(entry.get("data"), -1, "cert_chain.data")
        if kind in ("VCEK", "VLEK", "ASK", "ARK") and data:
            found[kind] = data
    vek = found.get("VLEK" if vlek == "VLEK" else "VCEK")
    parts = [c for c in (vek, found.get("ASK"), found.get("ARK")) if c]
    return b"".join(to_pem(c) for c in parts)
