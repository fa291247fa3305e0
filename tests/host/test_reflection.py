"""Server reflection on the proxy names the real tcme.v1 services."""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from host.server import create_server
from tcme.v1 import tcme_pb2

TCME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name


def test_reflection_lists_tcme_health_and_reflection():
    proxy, port = create_server("127.0.0.1:0", "unix:/nonexistent/enclave.sock", health_interval=5)
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = set(database.get_services())
            assert {
                TCME,
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            } <= services
            described = database.FindFileContainingSymbol(TCME)
            assert described.package == "tcme.v1"
            methods = {m.name for s in described.service for m in s.method}
            assert {"CreateSession", "Attest", "SubmitInput", "GetResult"} <= methods
    finally:
        proxy.stop(0)


def test_every_tcme_method_forwarded_not_unimplemented():
    # With no enclave behind it the proxy must answer UNAVAILABLE (it tried to forward),
    # never UNIMPLEMENTED (it did not know the method).
    proxy, port = create_server("127.0.0.1:0", "unix:/nonexistent/enclave.sock", health_interval=5)
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method in tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].methods:
                call = channel.unary_unary(f"/{TCME}/{method.name}")
                try:
                    call(b"", timeout=5)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, method.name
                    # Which words depend on timing alone: before its prober has given up
                    # on the enclave the proxy says "unavailable", after it "gone"; both
                    # name the enclave it tried.
                    details = err.details()
                    assert "unix:/nonexistent/enclave.sock" in details, details
                    assert "is unavailable" in details or "is gone" in details, details
                else:
                    raise AssertionError(f"{method.name} answered without an enclave")
    finally:
        proxy.stop(0)
