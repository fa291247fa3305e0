"""Health follows the enclave's reachability; shutdown is graceful and visible."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "tcmetest.Echo"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _wait_for(channel: grpc.Channel, want: int, service: str = "", seconds: float = 5) -> int:
    deadline = time.monotonic() + seconds
    status = _status(channel, service)
    while status != want and time.monotonic() < deadline:
        time.sleep(0.05)
        status = _status(channel, service)
    return status


def test_serving_when_enclave_up(proxy):
    _, channel = proxy
    assert _status(channel) == SERVING
    assert _status(channel, SERVICE) == SERVING


def test_not_serving_when_enclave_down_then_recovers(proxy, backend):
    _, channel = proxy
    port = backend.port
    backend.stop()
    assert _wait_for(channel, NOT_SERVING) == NOT_SERVING
    assert _status(channel, SERVICE) == NOT_SERVING
    backend.start(port)
    assert _wait_for(channel, SERVING, SERVICE) == SERVING


def test_not_serving_from_the_start_when_no_enclave_fail(make_proxy):
    # Nothing listens on the enclave address: a fresh proxy must not claim SERVING.
    _, port = make_proxy("unix:/nonexistent/tcme-enclave.sock")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert _status(channel) == NOT_SERVING
        assert _status(channel, SERVICE) == NOT_SERVING


def test_host_health_gives_the_whole_reason_fail(make_proxy, capsys):
    # `tcme host health` prints why the proxy is not serving. The reason used to be cut
    # at 200 characters, mid-word, before the part that says what is wrong.
    import tempfile
    from pathlib import Path

    from tcme.cli import EXIT_REJECT, main

    # A short folder: a Unix socket path has at most 107 bytes (pytest's tmp_path is longer).
    with tempfile.TemporaryDirectory(prefix="tcme-") as folder:
        socket_path = Path(folder) / "enclave.sock"  # nothing listens there
        _, port = make_proxy(f"unix:{socket_path}")
        code = main(["host", "health", f"127.0.0.1:{port}", "--wait", "0"])
    err = capsys.readouterr().err
    assert code == EXIT_REJECT, err
    assert f"unix:{socket_path} (route not learned yet) does not answer" in err
    assert "No such file or directory" in err  # the OS's reason, last in gRPC's text
    assert "(route ?)" not in err


def test_unknown_service_not_found_fail(proxy):
    _, channel = proxy
    try:
        _status(channel, "tcme.v1.NoSuchService")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("health answered for a service the proxy does not serve")


def test_graceful_shutdown_reports_not_serving_then_closes(backend, make_proxy):
    server, port = make_proxy(f"127.0.0.1:{backend.port}")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=10
    )
    first = next(watch).status
    server.stop(1.0)
    seen = [first]
    try:
        for update in watch:
            seen.append(update.status)
    except grpc.RpcError:
        pass  # the stream ends when the server closes
    assert seen[0] == SERVING
    assert NOT_SERVING in seen[1:]
    try:
        channel.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=2)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    else:
        raise AssertionError("a stopped proxy still answered")
    channel.close()
