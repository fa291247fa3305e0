"""Assemble the untrusted host proxy: forwarding, health, reflection, limits, TLS.

Parties reach only this listener. It forwards every ``tcme.v1`` RPC to an
enclave over TCP, a Unix socket (``unix:/path``) or vsock (``vsock:CID:PORT``,
supported by gRPC on Linux), and holds no key that could open party data.
With several enclaves (fixed targets and/or DNS names that resolve to many) it
routes by the session id's route tag (``host.router``, ``host.backends``);
proxies share no state, so any number of them can serve one fleet.

The listener is a ``grpc.aio`` server on a background loop (``tcme.serving.loop``):
waiting calls hold coroutines, not threads. ``ListenerLimits`` bound what one
connection and one peer may hold; health checks and Attest have a lane of
their own per peer (``tcme.serving.admission``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from host.backends import DEFAULT_RESOLVE_INTERVAL, RECONNECT_OPTIONS, BackendPool
from host.collateral import attest_hooks
from host.forward import ForwardingHandler
from host.health import FleetHealth
from host.route import session_fields
from host.router import Router
from host.services import method_shapes, tcme_services
from tcme.serving import loop
from tcme.serving.admission import PeerAdmission
from tcme.serving.limits import ListenerLimits, PeerPacer
from tcme.serving.reflection import enable_reflection

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_WORKERS = 32
# The proxy-to-enclave control plane: polled by the proxy, never forwarded to parties.
NOT_FORWARDED = frozenset({"tcme.v1.Fleet"})
# Cheap calls answered in a per-peer lane of their own (health Check is always in it).
PRIORITY_METHODS = ("/tcme.v1.Tcme/Attest", "/tcme.v1.Tcme/GetSession")


@dataclass(frozen=True)
class TlsConfig:
    """PEM server certificate chain and private key for the proxy's listener."""

    cert_chain: bytes
    private_key: bytes

    @classmethod
    def from_files(cls, cert: Path, key: Path) -> TlsConfig:
        """Read both PEM files; raises OSError when either is missing."""
        return cls(cert_chain=Path(cert).read_bytes(), private_key=Path(key).read_bytes())


class HostServer:
    """A started-or-startable proxy; ``stop(grace)`` shuts it down cleanly."""

    def __init__(
        self,
        server: grpc.aio.Server,
        router: Router,
        health: FleetHealth,
        port: int,
    ) -> None:
        self.server = loop.AioServer(server)
        self.port = port
        self.router = router
        self.backends = router.pool
        self.health = health

    def start(self) -> None:
        """Probe the enclaves once (so the first answers are real), then serve."""
        self.backends.start()
        self.server.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING, let calls in flight finish for ``grace`` seconds, then close."""
        self.health.stop()
        done = self.server.stop(grace)
        self.backends.stop()
        loop.run(self.router.close())
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it stopped."""
        return self.server.wait_for_termination(timeout)


def create_server(
    listen: str,
    enclave_target: str | Sequence[str] = (),
    *,
    enclave_dns: Sequence[str] = (),
    resolve_interval: float = DEFAULT_RESOLVE_INTERVAL,
    tls: TlsConfig | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    collateral_dir: Path | None = None,
    max_call_seconds: float | None = None,
    health_interval: float = 1.0,
    workers: int = DEFAULT_WORKERS,
    services: Sequence[ServiceDescriptor] | None = None,
    limits: ListenerLimits | None = None,
) -> tuple[HostServer, int]:
    """Build (not start) the proxy listening on ``listen``; returns it and the bound port.

    ``listen`` is ``host:port`` (port 0 picks a free one) or ``unix:/path``.
    ``enclave_target`` is one gRPC target or several: ``127.0.0.1:7000``,
    ``unix:/run/e.sock``, ``vsock:3:7000``; ``enclave_dns`` names ``NAME:PORT``
    whose every address is an enclave, re-resolved every ``resolve_interval``
    seconds. Every backend is probed every ``health_interval`` seconds.
    Messages above ``max_message_bytes`` are refused with RESOURCE_EXHAUSTED in either
    direction. Each forwarded call keeps the party's deadline (capped by
    ``max_call_seconds`` when given). ``limits`` bound streams per connection, calls per
    peer and connection lifetimes (defaults in ``ListenerLimits``); ``workers`` sizes the
    thread pool for blocking work (collateral reads), not the number of calls that can wait.
    """
    if max_message_bytes <= 0:
        raise ValueError("max_message_bytes must be positive")
    if workers <= 0:
        raise ValueError("workers must be positive")
    services = list(services) if services is not None else tcme_services()
    services = [s for s in services if s.full_name not in NOT_FORWARDED]
    limits = limits or ListenerLimits()
    targets = [enclave_target] if isinstance(enclave_target, str) else list(enclave_target)
    pool = BackendPool(
        targets, enclave_dns, interval=health_interval, resolve_interval=resolve_interval
    )
    return loop.run(
        _build(
            listen,
            pool,
            tls=tls,
            max_message_bytes=max_message_bytes,
            collateral_dir=collateral_dir,
            max_call_seconds=max_call_seconds,
            workers=workers,
            services=services,
            limits=limits,
        )
    )


async def _build(
    listen: str,
    pool: BackendPool,
    *,
    tls: TlsConfig | None,
    max_message_bytes: int,
    collateral_dir: Path | None,
    max_call_seconds: float | None,
    workers: int,
    services: Sequence[ServiceDescriptor],
    limits: ListenerLimits,
) -> tuple[HostServer, int]:
    """The proxy's parts, made on the serving loop (grpc.aio objects belong to it)."""
    names = [s.full_name for s in services]
    sizes = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    router = Router(pool, session_fields(services), channel_options=[*sizes, *RECONNECT_OPTIONS])
    router.bind_loop(asyncio.get_running_loop())
    health = FleetHealth(pool, names)
    pool.on_gone(router.on_gone)
    pool.on_change(health.update)
    threads = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tcme-host")
    handler = ForwardingHandler(
        router,
        method_shapes(services),
        response_hooks=attest_hooks(services, collateral_dir),
        max_call_seconds=max_call_seconds,
        on_unavailable=pool.report_unreachable,
        executor=threads,
    )
    server = grpc.aio.server(
        threads,
        interceptors=(
            PeerAdmission(
                limits.calls_per_peer,
                PRIORITY_METHODS,
                pacer=PeerPacer(limits.call_rate_per_peer, limits.call_burst_per_peer),
            ),
        ),
        options=[*sizes, *limits.grpc_options()],
    )
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    enable_reflection((*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    try:
        if tls is not None:
            credentials = grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)])
            port = server.add_secure_port(listen, credentials)
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError as err:  # grpc raises when the address cannot be bound
        raise OSError(f"host proxy could not listen on {listen}: {err}") from err
    if port == 0 and not listen.startswith("unix:"):
        raise OSError(f"host proxy could not listen on {listen}")
    log.info(
        "host proxy on %s (tls=%s) forwarding %d services to %s",
        listen,
        tls is not None,
        len(names),
        pool.describe(),
    )
    return HostServer(server, router, health, port), port
