"""``tcme host serve`` / ``tcme host health`` as processes: listen, report, shut down on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest


def _tcme(*args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "tcme", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_health_and_graceful_sigterm(backend, tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tcme", "host", "serve", "--listen", "127.0.0.1:0",
            "--enclave", f"127.0.0.1:{backend.port}", "--port-file", port_file, "--grace", "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.exists(), proc.stderr.read() if proc.poll() is not None else "no port"
        port = int(port_file.read_text())
        # The echo backend has no grpc health service: reachable counts as SERVING.
        done = _tcme("host", "health", f"127.0.0.1:{port}", "--wait", "10")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "SERVING"
        backend.stop()
        down = _tcme("host", "health", f"127.0.0.1:{port}")
        deadline = time.monotonic() + 10
        while down.returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            down = _tcme("host", "health", f"127.0.0.1:{port}")
        assert down.returncode == 1 and "NOT_SERVING" in down.stderr
        # ...and says why: the enclave behind it does not answer.
        assert f"127.0.0.1:{backend.port}" in down.stderr, down.stderr
        assert "does not answer" in down.stderr or "unavailable" in down.stderr
        as_json = _tcme("host", "health", f"127.0.0.1:{port}", "--json")
        body = json.loads(as_json.stdout)
        assert as_json.returncode == 1 and body["status"] == "NOT_SERVING" and body["reason"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "listening on port" in out and "shutting down" in out


def test_serve_usage_errors_exit_2():
    lone = _tcme("host", "serve", "--listen", "127.0.0.1:0", "--enclave", "x:1", "--tls-cert", "c")
    assert lone.returncode == 2 and "--tls-key" in lone.stderr and "Traceback" not in lone.stderr
    no_enclave = _tcme("host", "serve", "--listen", "127.0.0.1:0")
    assert no_enclave.returncode == 2 and "--enclave" in no_enclave.stderr


def test_health_unreachable_proxy_exits_3():
    done = _tcme("host", "health", "127.0.0.1:9")
    assert done.returncode == 3
    assert "UNAVAILABLE" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "bad",
    [
        ["--max-message-bytes", "0"],
        ["--collateral-dir", "/nonexistent"],
        ["--max-calls-per-peer", "0"],
        ["--peer-call-rate", "-1"],
        ["--max-connection-age", "0"],
    ],
)
def test_serve_bad_options_exit_2(bad):
    done = _tcme("host", "serve", "--listen", "127.0.0.1:0", "--enclave", "127.0.0.1:9", *bad)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
