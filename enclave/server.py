"""The enclave's gRPC server: ``create_server(address, enclave) -> (server, port)``.

``address`` is ``HOST:PORT`` (port 0 picks a free one, for tests) or
``unix:PATH``. Only the host proxy should reach it: in simulated mode bind
127.0.0.1 or a Unix socket; in a CVM, the vsock/virtio channel to the host.
The server speaks plaintext gRPC: everything secret in it is already HPKE-sealed
or signed end to end, and the host is untrusted either way.

Like the proxy, it is a ``grpc.aio`` server: a call holds a thread only once
its whole request has arrived, so streams that send headers and nothing more
hold none. Limits (``tcme.serving.limits.ListenerLimits``): connections are
kept alive and aged like the proxy's, each peer address has at most
``ENCLAVE_CALLS_PER_PEER`` calls in flight (``tcme.serving.admission``), and
``enclave.service.CallGate`` keeps ``RESERVED_WORKERS`` threads for Attest,
GetSession and health. It serves reflection (v1 and v1alpha) like the proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attestation.errors import UsageError
from enclave.fleet import FLEET_SERVICE, FleetServicer
from enclave.runtime import Enclave
from enclave.service import SERVICE, TcmeServicer, decoding_handler
from tcme.serving import loop
from tcme.serving.admission import PeerAdmission
from tcme.serving.health import SERVING, AsyncHealthServicer, HealthTable
from tcme.serving.limits import ListenerLimits
from tcme.serving.loop import AioServer
from tcme.serving.reflection import enable_reflection
from tcme.v1 import fleet_pb2, tcme_pb2

SERVICE_NAME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name
FLEET = fleet_pb2.DESCRIPTOR.services_by_name["Fleet"]
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_RECEIVE_BYTES = 1024 * 1024
MAX_SEND_BYTES = 4 * 1024 * 1024
# The proxy multiplexes every party's calls on one connection: the per-connection
# stream limit must not be what queues a party's Attest behind others' waits, and
# aging that connection must not cut a long CreateSession (capability tests) short.
# Calls one peer address may have in flight (Attest, GetSession and health in a lane
# of their own): each proxy of a fleet gets its share, and a stranger that reaches
# this port directly cannot take every thread.
ENCLAVE_CALLS_PER_PEER = 256
PRIORITY_METHODS = (f"/{SERVICE_NAME}/Attest", f"/{SERVICE_NAME}/GetSession")
ENCLAVE_LIMITS = ListenerLimits(
    streams_per_connection=1024,
    connection_age_seconds=24 * 3600.0,
    connection_age_grace_seconds=600.0,
)


class EnclaveServer(AioServer):
    """The enclave's server and the parts its operator code reaches: the health table
    (drain, shutdown) and the tcme servicer (its call gate)."""

    def __init__(
        self,
        server: grpc.aio.Server,
        *,
        health_servicer: HealthTable,
        tcme_servicer: TcmeServicer,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(server, on_stop=on_stop)
        self.health_servicer = health_servicer
        self.tcme_servicer = tcme_servicer


def create_server(
    address: str, enclave: Enclave, *, max_workers: int = 32
) -> tuple[EnclaveServer, int]:
    """Build and bind (not start) the server; returns it and the bound TCP port (0 for unix).

    The server is a ``grpc.aio`` server on the process's serving loop
    (``tcme.serving.loop``): a call is read in full before any thread takes it,
    so a stream that never sends its request holds none; the servicer's code
    runs on ``max_workers`` threads. Raises ``UsageError`` when the address
    cannot be bound.
    """
    return loop.run(_build(address, enclave, max_workers))


def check_listen_address(address: str) -> None:
    """Refuse a Unix socket whose folder does not exist (UsageError), in plain words: gRPC
    would only say that it failed to bind. The CLI calls it before loading the model."""
    if address.startswith("unix:"):
        folder = Path(address.removeprefix("unix:")).parent
        if not folder.is_dir():
            raise UsageError(
                "enclave.listen",
                f"cannot listen on {address}: the socket's folder does not exist",
                expected=f"an existing folder {folder} (create it first)",
                actual="no such folder",
            )


async def _build(address: str, enclave: Enclave, max_workers: int) -> tuple[EnclaveServer, int]:
    pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tcme-enclave")
    server = grpc.aio.server(
        interceptors=(PeerAdmission(ENCLAVE_CALLS_PER_PEER, PRIORITY_METHODS),),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),
            *ENCLAVE_LIMITS.grpc_options(),
        ],
    )
    servicer = TcmeServicer(enclave, workers=max_workers)
    server.add_generic_rpc_handlers((decoding_handler(SERVICE, servicer, pool),))
    server.add_generic_rpc_handlers((decoding_handler(FLEET, FleetServicer(enclave), pool),))
    health = HealthTable()
    health.set_reason("the enclave is shutting down or draining")
    health_pb2_grpc.add_HealthServicer_to_server(AsyncHealthServicer(health), server)
    # "" and Tcme: takes new sessions (NOT_SERVING while draining, enclave.fleet.drain).
    # Fleet: the process is up (liveness), SERVING until shutdown, drain or not.
    for name in ("", SERVICE_NAME, FLEET_SERVICE):
        health.set(name, SERVING)
    enable_reflection((SERVICE_NAME, FLEET_SERVICE, HEALTH_SERVICE), server)
    check_listen_address(address)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise UsageError("enclave.listen", f"cannot listen on {address}: {err}") from err
    if port == 0 and not address.startswith("unix:"):
        raise UsageError("enclave.listen", f"cannot listen on {address}")
    facade = EnclaveServer(
        server, health_servicer=health, tcme_servicer=servicer, on_stop=pool.shutdown
    )
    return facade, 0 if address.startswith("unix:") else port


def shutdown(server: EnclaveServer, enclave: Enclave, grace: float = 2.0) -> None:
    """Mark NOT_SERVING, stop accepting calls, then drop every session."""
    server.health_servicer.enter_graceful_shutdown()
    server.stop(grace).wait()
    enclave.close()
