"""The proxy stays up under a stranger's floods: header-only streams, long waits, one busy peer.

Each test is the attack over real sockets (loopback) against the real proxy in
front of the echo backend, followed by the positive path: health, reflection
and ordinary calls still answer.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tcme.serving.limits import ListenerLimits, PeerLimiter, peer_address
from tcme.wire import error_info

SERVICE = "tcmetest.Echo"
SERVING = health_pb2.HealthCheckResponse.SERVING
HEADER_ONLY = 48  # more than the proxy's worker threads (32) ever were


def _path(method: str) -> str:
    return f"/{SERVICE}/{method}"


def _own_connection(port: int) -> grpc.Channel:
    """A channel with a connection of its own (not shared through the global subchannel pool)."""
    return grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )


class HeaderOnly:
    """Streams that send their headers and then nothing, with no deadline."""

    def __init__(self, port: int, count: int, per_connection: int = 16) -> None:
        self._release = threading.Event()
        self.channels = [_own_connection(port) for _ in range(-(-count // per_connection))]
        self.calls = []
        for i in range(count):
            channel = self.channels[i // per_connection]
            self.calls.append(channel.stream_unary(_path("Unary")).future(self._never()))

    def _never(self):
        self._release.wait(60)
        return
        yield  # a generator that sends no message

    def close(self) -> None:
        for call in self.calls:
            call.cancel()
        self._release.set()
        for channel in self.channels:
            channel.close()


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_header_only_streams_hold_no_worker(proxy):
    server, channel = proxy
    attack = HeaderOnly(server.port, HEADER_ONLY)
    try:
        time.sleep(0.3)  # let every stream open at the proxy
        assert not any(call.done() for call in attack.calls)
        for _ in range(10):
            assert _health(channel) == SERVING
            assert channel.unary_unary(_path("Unary"))(b"hi", timeout=5) == b"echo:hi"
    finally:
        attack.close()


def test_header_only_streams_ended_by_connection_age(backend, make_proxy):
    limits = ListenerLimits(connection_age_seconds=0.5, connection_age_grace_seconds=0.5)
    _, port = make_proxy(f"127.0.0.1:{backend.port}", limits=limits)
    attack = HeaderOnly(port, 4)
    try:
        for call in attack.calls:
            # max age (+10% jitter) + grace, with room for a slow machine.
            with pytest.raises(grpc.RpcError) as info:
                call.result(timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        attack.close()
    assert backend.received == []


def test_long_waits_hold_no_worker_and_cancel_frees_them(proxy, backend):
    server, channel = proxy
    # The attacker's 40 waits, on two connections of its own (32 streams each at most).
    attackers = [_own_connection(server.port) for _ in range(2)]
    waits = [attackers[i % 2].unary_unary(_path("GetResult")).future(b"wait") for i in range(40)]
    try:
        time.sleep(0.3)
        # (The echo backend has only 4 workers: its own calls would wait behind the
        # waits there; the enclave's CallGate is tested in tests/enclave.)
        for _ in range(10):
            assert _health(channel) == SERVING
    finally:
        for call in waits:
            call.cancel()
        for attacker in attackers:
            attacker.close()
    assert backend.cancelled.wait(5)


def test_one_peer_over_its_limit_refused_health_still_served(backend, make_proxy):
    limits = ListenerLimits(calls_per_peer=4)
    _, port = make_proxy(f"127.0.0.1:{backend.port}", limits=limits)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        # Four waits fill this peer's ordinary lane.
        waits = [channel.unary_unary(_path("GetResult")).future(b"w") for _ in range(4)]
        try:
            time.sleep(0.3)  # let them reach the proxy
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(_path("Unary"))(b"one too many", timeout=5)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(info.value)["reason"] == "server.peer_busy"
            assert "one too many" not in info.value.details()
            # Health has a lane of its own.
            assert _health(channel) == SERVING
        finally:
            for call in waits:
                call.cancel()
        # The lane empties as the calls end.
        deadline = time.monotonic() + 5
        while True:
            try:
                assert channel.unary_unary(_path("Unary"))(b"again", timeout=5) == b"echo:again"
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_peer_limiter_counts_per_address_not_per_port():
    limiter = PeerLimiter(2)
    assert peer_address("ipv4:10.0.0.5:51234") == "ipv4:10.0.0.5"
    assert peer_address("ipv6:[::1]:5") == "ipv6:[::1]"
    with limiter.hold("ipv4:10.0.0.5:1"), limiter.hold("ipv4:10.0.0.5:2"):
        assert limiter.in_flight("ipv4:10.0.0.5:3") == 2
        with pytest.raises(Exception, match="calls in flight"), limiter.hold("ipv4:10.0.0.5:3"):
            pass
        with limiter.hold("ipv4:10.0.0.6:1"):  # another address has its own count
            pass
    assert limiter.in_flight("ipv4:10.0.0.5:9") == 0


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_served_under_both_names(proxy, version):
    _, channel = proxy
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol=f"grpc.reflection.{version}.ServerReflection"
        ),
    ]
    listed, described = list(call(iter(requests), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    from google.protobuf import descriptor_pb2

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    assert f"grpc.reflection.{version}" in {f.package for f in files}


def test_pacer_lets_a_burst_through_then_one_call_per_interval():
    from tcme.serving.limits import PeerPacer

    pacer = PeerPacer(rate=10.0, burst=3)
    waits = [pacer.reserve("ipv4:10.0.0.5:1", now=100.0) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])
    # Another address is not slowed by the first one's flood.
    assert pacer.reserve("ipv4:10.0.0.6:1", now=100.0) == 0.0
    # A refused call gives its turn back; time refills the burst.
    pacer.cancel("ipv4:10.0.0.5:7")
    assert pacer.reserve("ipv4:10.0.0.5:1", now=100.0) == pytest.approx(0.3)
    assert pacer.reserve("ipv4:10.0.0.5:1", now=200.0) == 0.0
