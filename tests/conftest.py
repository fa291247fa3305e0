"""Shared fixtures: the real evidence vectors live outside the repository.

They are read from ``$TCME_VECTORS`` or ``../shared/vectors`` (beside the
checkout) and never copied in. When neither exists, tests that need them skip
and say why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def vectors_root() -> Path | None:
    """The vectors folder, or None when this machine has none."""
    env = os.environ.get("TCME_VECTORS")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "vectors")
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    return None


SKIP_NO_VECTORS = (
    "real evidence vectors not found: set TCME_VECTORS or place them in ../shared/vectors"
)


@pytest.fixture(scope="session")
def vectors() -> Path:
    """Root of the real vectors; skips (with the reason) when absent."""
    root = vectors_root()
    if root is None:
        pytest.skip(SKIP_NO_VECTORS)
    return root


@pytest.fixture(scope="session")
def vector(vectors: Path):
    """``vector("snp/ms_milan_v3/report.bin")`` -> Path, checked against manifest.json."""
    manifest = json.loads((vectors / "manifest.json").read_text())
    files = manifest.get("files", manifest)
    known = {f["file"] for f in files} if isinstance(files, list) else set(files)

    def _get(relative: str) -> Path:
        path = vectors / relative
        if known and relative not in known and not path.is_dir():
            raise AssertionError(f"{relative} is not listed in vectors/manifest.json")
        if not path.exists():
            pytest.skip(f"vector {relative} missing under {vectors}")
        return path

    return _get


# --- A local HTTP server standing in for AMD KDS / Intel PCS (issue 7) -------------


class FakeCollateralServer:
    """Serves fixed bodies on 127.0.0.1 like KDS/PCS would; scripted replies for errors.

    ``serve(path, body)`` answers 200 with ``body`` for a path (query included);
    ``script(path, [(status, headers, body), ...])`` answers those first, in order.
    Unknown paths get 404. ``requests`` lists every path asked for, in order.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.routes: dict[str, bytes] = {}
        self.scripts: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                queue = owner.scripts.get(self.path)
                if queue:
                    status, headers, body = queue.pop(0)
                elif self.path in owner.routes:
                    status, headers, body = 200, {}, owner.routes[self.path]
                else:
                    status, headers, body = 404, {}, b"not found"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def serve(self, path: str, body: bytes) -> None:
        self.routes[path] = body

    def script(self, path: str, replies: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.scripts[path] = list(replies)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def collateral_server():
    """A started FakeCollateralServer, stopped after the test."""
    server = FakeCollateralServer()
    try:
        yield server
    finally:
        server.stop()
