"""A STAND-IN for the CoCo attestation agent's REST API (guest-components api-server-rest).

It is not the code under test and not the real agent: it imitates the agent's
``GET /info`` and ``GET /aa/evidence?runtime_data=..&encoding=base64`` as
guest-components implements them (URL-safe base64 without padding, 400 on bad
base64, 404 "Attestation Feature Not Enabled" when the feature is off, loopback
callers only), and answers with evidence in the agent's JSON per TEE:

* SEV-SNP: ``{"attestation_report": <virtee/sev 6.x serde form>, "cert_chain": [...]}``,
  built here from a raw report (a real vector, or a SIMULATED one);
* TDX: ``{"cc_eventlog": null, "quote": <base64>}`` from a real quote.

``evidence_for`` maps the runtime data asked for to raw evidence; a real
vector can only be served for the REPORT_DATA it was made with.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from attestation.snp.abi import AttestationReport, TcbVersion, parse_report

# runtime data -> (tee, raw evidence, {cert_type: DER}) or None (the agent fails: HTTP 500)
EvidenceSource = Callable[[bytes], tuple[str, bytes, dict[str, bytes]] | None]


def _tcb(tcb: TcbVersion) -> dict[str, int | None]:
    return {
        "fmc": tcb.fmc,
        "bootloader": tcb.bootloader,
        "tee": tcb.tee,
        "snp": tcb.snp,
        "microcode": tcb.microcode,
    }


def sev_serde_json(report: AttestationReport) -> dict:
    """virtee/sev 6.x ``AttestationReport`` as serde_json writes it (byte arrays as lists)."""
    v3 = report.version >= 3
    v5 = report.version >= 5
    return {
        "version": report.version,
        "guest_svn": report.guest_svn,
        "policy": report.policy,
        "family_id": list(report.family_id),
        "image_id": list(report.image_id),
        "vmpl": report.vmpl,
        "sig_algo": report.signature_algo,
        "current_tcb": _tcb(report.current_tcb),
        "plat_info": report.platform_info,
        "key_info": report.key_info.raw,
        "report_data": list(report.report_data),
        "measurement": list(report.measurement),
        "host_data": list(report.host_data),
        "id_key_digest": list(report.id_key_digest),
        "author_key_digest": list(report.author_key_digest),
        "report_id": list(report.report_id),
        "report_id_ma": list(report.report_id_ma),
        "reported_tcb": _tcb(report.reported_tcb),
        "cpuid_fam_id": report.cpuid_fam_id if v3 else None,
        "cpuid_mod_id": report.cpuid_mod_id if v3 else None,
        "cpuid_step": report.cpuid_step if v3 else None,
        "chip_id": list(report.chip_id),
        "committed_tcb": _tcb(report.committed_tcb),
        "current": {
            "major": report.current_major,
            "minor": report.current_minor,
            "build": report.current_build,
        },
        "committed": {
            "major": report.committed_major,
            "minor": report.committed_minor,
            "build": report.committed_build,
        },
        "launch_tcb": _tcb(report.launch_tcb),
        "launch_mit_vector": report.launch_mit_vector if v5 else None,
        "current_mit_vector": report.current_mit_vector if v5 else None,
        "signature": {"r": list(report.signature_r), "s": list(report.signature_s)},
    }


def agent_evidence_json(tee: str, raw: bytes, certs: dict[str, bytes]) -> bytes:
    """The agent's evidence JSON for one raw report or quote."""
    if tee == "sev-snp":
        chain = [{"cert_type": kind, "data": list(der)} for kind, der in certs.items()]
        document = {
            "attestation_report": sev_serde_json(parse_report(raw)),
            "cert_chain": chain or None,
        }
    else:
        document = {"cc_eventlog": None, "quote": base64.b64encode(raw).decode()}
    return json.dumps(document).encode()


class CocoAgentStandIn:
    """Serves the stand-in API on 127.0.0.1:<free port>; ``url`` is its base URL."""

    def __init__(
        self,
        evidence_for: EvidenceSource,
        *,
        tee: str | None = "snp",
        attestation_feature: bool = True,
    ) -> None:
        self.requests: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                standin.requests.append(self.path)
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/info":
                    info = {"version": "v0.stand-in", "tee": tee if attestation_feature else None}
                    info["additional_tees"] = []
                    return self._send(200, json.dumps(info).encode())
                if not url.path.startswith("/aa/"):
                    return self._send(404, b"URL NOT FOUND", "text/plain")
                if not attestation_feature:
                    return self._send(404, b"Attestation Feature Not Enabled", "text/plain")
                if url.path != "/aa/evidence" or "runtime_data" not in params:
                    return self._send(400, b"BAD REQUEST", "text/plain")
                value = params["runtime_data"]
                if params.get("encoding") == "base64":
                    if "=" in value:  # URL_SAFE_NO_PAD refuses padding
                        return self._send(400, b"BAD REQUEST", "text/plain")
                    try:
                        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
                    except (binascii.Error, ValueError):
                        return self._send(400, b"BAD REQUEST", "text/plain")
                elif "encoding" in params:
                    return self._send(400, b"BAD REQUEST", "text/plain")
                else:
                    data = value.encode()  # the legacy rule: the query's UTF-8 bytes
                if len(data) > 64:
                    return self._send(
                        500, b"SNP Attester: Report data must be no more than 64 bytes"
                    )
                found = evidence_for(data.ljust(64, b"\0"))
                if found is None:
                    return self._send(500, b"Failed to get evidence", "text/plain")
                return self._send(200, agent_evidence_json(*found), "application/octet-stream")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CocoAgentStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
