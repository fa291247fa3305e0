"""The enclave's gRPC server: ``create_server(address, enclave) -> (server, port)``.

``address`` is ``HOST:PORT`` (port 0 picks a free one, for tests) or
``unix:PATH``. Only the host proxy should reach it: in simulated mode bind
127.0.0.1 or a Unix socket; in a CVM, the vsock/virtio channel to the host.
The server speaks plaintext gRPC: everything secret in it is already HPKE-sealed
or signed end to end, and the host is untrusted either way.

Limits (``tcme.serving.limits.ListenerLimits``): connections are aged and
kept alive like the proxy's, and ``enclave.service.CallGate`` keeps
``RESERVED_WORKERS`` threads for Attest, GetSession and health. The proxy
forwards a call only once its whole request has arrived, so a stream that
sends headers and nothing more never reaches the enclave through it.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from attestation.errors import UsageError
from enclave.fleet import FLEET_SERVICE, FleetServicer
from enclave.runtime import Enclave
from enclave.service import TcmeServicer, tcme_handler
from tcme.serving.limits import ListenerLimits
from tcme.v1 import fleet_pb2_grpc, tcme_pb2

SERVICE_NAME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name
MAX_RECEIVE_BYTES = 1024 * 1024
MAX_SEND_BYTES = 4 * 1024 * 1024
# The proxy multiplexes every party's calls on one connection: the per-connection
# stream limit must not be what queues a party's Attest behind others' waits, and
# aging that connection must not cut a long CreateSession (capability tests) short.
ENCLAVE_LIMITS = ListenerLimits(
    streams_per_connection=1024,
    connection_age_seconds=24 * 3600.0,
    connection_age_grace_seconds=600.0,
)


def create_server(
    address: str, enclave: Enclave, *, max_workers: int = 32
) -> tuple[grpc.Server, int]:
    """Build and bind (not start) the server; returns it and the bound TCP port (0 for unix).

    Raises ``UsageError`` when the address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tcme-enclave"),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),
            *ENCLAVE_LIMITS.grpc_options(),
        ],
    )
    servicer = TcmeServicer(enclave, workers=max_workers)
    server.add_generic_rpc_handlers((tcme_handler(servicer),))
    fleet_pb2_grpc.add_FleetServicer_to_server(FleetServicer(enclave), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # "" and Tcme: takes new sessions (NOT_SERVING while draining, enclave.fleet.drain).
    # Fleet: the process is up (liveness), SERVING until shutdown, drain or not.
    for name in ("", SERVICE_NAME, FLEET_SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise UsageError("enclave.listen", f"cannot listen on {address}: {err}") from err
    if port == 0 and not address.startswith("unix:"):
        raise UsageError("enclave.listen", f"cannot listen on {address}")
    server.health_servicer = health_servicer  # type: ignore[attr-defined]
    server.tcme_servicer = servicer  # type: ignore[attr-defined]
    return server, 0 if address.startswith("unix:") else port


def shutdown(server: grpc.Server, enclave: Enclave, grace: float = 2.0) -> None:
    """Mark NOT_SERVING, stop accepting calls, then drop every session."""
    health_servicer = getattr(server, "health_servicer", None)
    if health_servicer is not None:
        health_servicer.enter_graceful_shutdown()
    server.stop(grace).wait()
    enclave.close()
