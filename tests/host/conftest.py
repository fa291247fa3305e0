"""A tiny echo backend standing in for the enclave in proxy-only tests.

The proxy forwards bytes without looking at them, so its own behaviour
(deadlines, status pass-through, limits, health) is tested
against this backend, which can report what it received (its deadline, its
metadata) and fail on demand. Tests with the real enclave live in tests/e2e/.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import status_pb2

from host.server import create_server

SERVICE = "tcmetest.Echo"
DETAILS_KEY = "grpc-status-details-bin"


def echo_service_descriptor():
    """tcmetest.Echo (unary methods, like tcme.v1), in a private pool."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tcmetest/echo.proto", package="tcmetest", syntax="proto3"
    )
    blob = proto.message_type.add(name="Blob")
    blob.field.add(name="data", number=1, type=12, label=1)
    service = proto.service.add(name="Echo")
    # GetResult is named like the enclave's long wait (whose cancellation must reach it).
    for name in ("Unary", "GetResult"):
        service.method.add(name=name, input_type=".tcmetest.Blob", output_type=".tcmetest.Blob")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool.FindServiceByName(SERVICE)


def rich_status(code: grpc.StatusCode, message: str) -> bytes:
    return status_pb2.Status(code=code.value[0], message=message).SerializeToString()


class EchoBackend:
    """Records what reached it; behaviour chosen by the request bytes."""

    SERVICE = SERVICE
    DETAILS_KEY = DETAILS_KEY
    rich_status = staticmethod(rich_status)

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.deadlines: list[float] = []
        self.metadata: list[dict[str, str]] = []
        self.cancelled = threading.Event()
        self.server: grpc.Server | None = None
        self.port = 0

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.received.append(request)
        self.deadlines.append(context.time_remaining())
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        if request == b"not-found":
            context.set_trailing_metadata(
                ((DETAILS_KEY, rich_status(grpc.StatusCode.NOT_FOUND, "session gone")),)
            )
            context.abort(grpc.StatusCode.NOT_FOUND, "session.lookup: no such session")
        if request == b"sleep":
            context.add_callback(self.cancelled.set)
            self.cancelled.wait(10)
            return b"late"
        if request.startswith(b"big:"):
            return b"x" * int(request[4:])
        return b"echo:" + request

    def get_result(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Waits like the enclave's GetResult until the caller goes away (or 10 s)."""
        context.add_callback(self.cancelled.set)
        self.cancelled.wait(10)
        return b"late"

    def start(self, port: int = 0) -> int:
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "GetResult": grpc.unary_unary_rpc_method_handler(self.get_result),
            },
        )
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()
        return self.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait()
            self.server = None


@pytest.fixture
def backend():
    echo = EchoBackend()
    echo.start()
    yield echo
    echo.stop()


@pytest.fixture
def make_proxy():
    started = []

    def _make(target: str, **kwargs):
        kwargs.setdefault("health_interval", 0.1)
        proxy, port = create_server(
            "127.0.0.1:0", target, services=[echo_service_descriptor()], **kwargs
        )
        proxy.start()
        started.append(proxy)
        return proxy, port

    yield _make
    for proxy in started:
        proxy.stop(0)


@pytest.fixture
def proxy(backend, make_proxy):
    """(HostServer, channel to it) in front of the echo backend."""
    server, port = make_proxy(f"127.0.0.1:{backend.port}", max_message_bytes=1024 * 1024)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield server, channel
    channel.close()
