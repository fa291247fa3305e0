"""The proxy forwards unary calls byte for byte and keeps statuses intact."""

from __future__ import annotations

import time

import grpc
import pytest

SERVICE = "tcmetest.Echo"


def _path(method: str) -> str:
    return f"/{SERVICE}/{method}"


def test_unary_bytes_forwarded_unchanged(proxy, backend):
    _, channel = proxy
    payload = bytes(range(256)) * 4  # not valid protobuf for Blob: the proxy must not care
    assert channel.unary_unary(_path("Unary"))(payload, timeout=5) == b"echo:" + payload
    assert backend.received == [payload]


def test_streaming_method_refused_when_building_the_proxy():
    """The API is all unary: a streaming method in the descriptors is a build error."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    from host.server import create_server

    proto = descriptor_pb2.FileDescriptorProto(
        name="tcmetest/stream.proto", package="tcmetest.s", syntax="proto3"
    )
    proto.message_type.add(name="Blob")
    service = proto.service.add(name="S")
    service.method.add(
        name="Watch",
        input_type=".tcmetest.s.Blob",
        output_type=".tcmetest.s.Blob",
        server_streaming=True,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    with pytest.raises(ValueError, match="unary methods only"):
        create_server(
            "127.0.0.1:0", "127.0.0.1:1", services=[pool.FindServiceByName("tcmetest.s.S")]
        )


def test_enclave_status_and_rich_details_pass_through_fail(proxy, backend):
    _, channel = proxy
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(_path("Unary"))(b"not-found", timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "session.lookup: no such session"
    trailers = dict(err.trailing_metadata())
    expected = backend.rich_status(grpc.StatusCode.NOT_FOUND, "session gone")
    assert trailers[backend.DETAILS_KEY] == expected


def test_party_deadline_propagates_to_enclave(proxy, backend):
    _, channel = proxy
    channel.unary_unary(_path("Unary"))(b"d", timeout=3.0)
    # gRPC rounds the wire timeout up slightly; without propagation it would be ~9e18.
    assert 0 < backend.deadlines[-1] < 3.5


def test_no_party_deadline_capped_by_max_call_seconds(backend, make_proxy):
    _, port = make_proxy(f"127.0.0.1:{backend.port}", max_call_seconds=2.0)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary(_path("Unary"))(b"d")
    assert 0 < backend.deadlines[-1] < 2.5


def test_deadline_exceeded_reaches_party_and_cancels_enclave_call_fail(proxy, backend):
    _, channel = proxy
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(_path("Unary"))(b"sleep", timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
    # The enclave-side call ended too (its own deadline or the proxy's cancel).
    assert backend.cancelled.wait(5)


def test_custom_metadata_forwarded_hop_headers_not(proxy, backend):
    _, channel = proxy
    channel.unary_unary(_path("Unary"))(b"m", timeout=5, metadata=[("x-party-trace", "t1")])
    seen = backend.metadata[-1]
    assert seen["x-party-trace"] == "t1"
    assert "grpc-python" in seen["user-agent"]  # the proxy's own agent, not a copied header
    assert seen["user-agent"].count("grpc-python") == 1


def test_unknown_method_unimplemented_fail(proxy, backend):
    _, channel = proxy
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(f"/{SERVICE}/Nope")(b"x", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert backend.received == []


def test_oversized_request_resource_exhausted_fail(proxy, backend):
    _, channel = proxy  # proxy limit: 1 MiB
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(_path("Unary"))(b"x" * (2 * 1024 * 1024), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()
    assert backend.received == []


def test_oversized_enclave_response_resource_exhausted_fail(proxy):
    _, channel = proxy
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(_path("Unary"))(b"big:%d" % (2 * 1024 * 1024), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()


def test_enclave_down_unavailable_with_clear_message_fail(proxy, backend):
    _, channel = proxy
    backend.stop()
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(_path("Unary"))(b"x", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details().startswith(f"enclave at 127.0.0.1:{backend.port} is unavailable")


def test_party_cancelling_a_wait_cancels_the_enclave_call(proxy, backend):
    """A party that gives up on GetResult (no deadline) frees the enclave-side call at once."""
    _, channel = proxy
    future = channel.unary_unary(_path("GetResult")).future(b"wait")
    time.sleep(0.3)  # let the proxy reach the backend
    assert not backend.cancelled.is_set()
    started = time.monotonic()
    future.cancel()
    assert backend.cancelled.wait(5)
    assert time.monotonic() - started < 5
