"""A stand-in for Intel PCS / a PCCS on 127.0.0.1, for tests and demos without a network.

FAKE SERVICE, REAL DATA: it serves real, Intel-signed collateral read byte for byte from
PCS response folders (``attestation.tdx.collateral.DIRECTORY_SPELLINGS``), under PCS's
API v4 paths and headers (issuer chains URL-encoded, as PCS sends them). It signs
nothing and cannot make bad collateral look good; only the transport is fake.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from attestation.tdx.collateral import DIRECTORY_SPELLINGS, PCK_CAS, crl_der
from attestation.tdx.pcs import PCCS_ROOT_CA_CRL_PATH

ROOT_CA_CRL_PATH = "/IntelSGXRootCA.der"  # where the fake serves the root CRL in PCS mode


@dataclass
class FakePcsRoutes:
    """Exact request path+query -> (status, body, headers)."""

    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def add(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Serve ``body`` (HTTP 200) with ``headers`` at ``path``."""
        self.routes[path] = (200, body, headers or {})


def routes_from_folder(
    folder: Path,
    fmspc: str,
    *,
    pccs: bool = False,
    tcb_info_chain_header: str = "TCB-Info-Issuer-Chain",
) -> FakePcsRoutes:
    """PCS (or PCCS, hex root CRL) routes for one FMSPC from a folder of PCS responses."""
    fmspc = fmspc.lower()
    routes = FakePcsRoutes()

    def raw(item: str, ca: str = "platform") -> bytes | None:
        for name in DIRECTORY_SPELLINGS[item]:
            path = folder / name.format(fmspc=fmspc, ca=ca)
            if path.is_file():
                return path.read_bytes()
        return None

    def header(item: str, ca: str = "platform") -> str:
        chain = raw(item, ca)
        if chain is None:
            raise FileNotFoundError(f"{item} in {folder}")
        text = chain.decode().strip()  # a header value cannot carry a raw line break
        return text if "%" in text else urllib.parse.quote(text, safe="")

    tcb_info = raw("tcb_info")
    qe_identity = raw("qe_identity")
    root_crl = raw("root_ca_crl")
    if tcb_info is None or qe_identity is None or root_crl is None:
        raise FileNotFoundError(f"{folder} lacks TCB Info, QE Identity or the root CA CRL")
    routes.add(
        f"/tdx/certification/v4/tcb?fmspc={fmspc.upper()}",
        tcb_info,
        {tcb_info_chain_header: header("tcb_info_issuer_chain")},
    )
    routes.add(
        "/tdx/certification/v4/qe/identity",
        qe_identity,
        {"SGX-Enclave-Identity-Issuer-Chain": header("qe_identity_issuer_chain")},
    )
    for ca in PCK_CAS:
        crl = raw("pck_crl", ca)
        if crl is not None:
            routes.add(
                f"/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
                crl,
                {"SGX-PCK-CRL-Issuer-Chain": header("pck_crl_issuer_chain", ca)},
            )
    if pccs:  # PCCS answers the root CA CRL as hex text
        routes.add(PCCS_ROOT_CA_CRL_PATH, crl_der(root_crl, "root_ca_crl").hex().encode())
    else:
        routes.add(ROOT_CA_CRL_PATH, root_crl)
    return routes


@contextmanager
def serve(routes: FakePcsRoutes) -> Iterator[str]:
    """Run the fake on 127.0.0.1 (a free port) while the block runs; yield its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes.requests.append(self.path)
            status, body, headers = routes.routes.get(
                self.path, (404, b'{"error":"not found"}', {})
            )
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
