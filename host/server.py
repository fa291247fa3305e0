"""Assemble the untrusted host proxy: forwarding, health, reflection, limits, TLS.

Parties reach only this listener. It forwards every ``tcme.v1`` RPC to the
enclave over TCP, a Unix socket (``unix:/path``) or vsock (``vsock:CID:PORT``,
supported by gRPC on Linux), and holds no key that could open party data.

The listener is a ``grpc.aio`` server on a background loop (``tcme.serving.loop``):
waiting calls hold coroutines, not threads. ``ListenerLimits`` bound what one
connection and one peer may hold; health checks and Attest have a lane of
their own per peer (``tcme.serving.admission``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from host.collateral import attest_hooks
from host.forward import ForwardingHandler
from host.health import EnclaveHealthMonitor
from host.services import method_shapes, tcme_services
from tcme.serving import loop
from tcme.serving.admission import PeerAdmission
from tcme.serving.limits import ListenerLimits
from tcme.serving.reflection import enable_reflection

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_WORKERS = 32
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
        channels: Sequence[grpc.Channel | grpc.aio.Channel],
        monitor: EnclaveHealthMonitor,
        port: int,
    ) -> None:
        self.server = loop.AioServer(server)
        self.port = port
        self._channels = list(channels)
        self.health = monitor

    def start(self) -> None:
        """Start serving and probing the enclave."""
        self.server.start()
        self.health.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING, let calls in flight finish for ``grace`` seconds, then close."""
        self.health.stop()
        done = self.server.stop(grace)
        for channel in self._channels:
            _close(channel)
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it stopped."""
        return self.server.wait_for_termination(timeout)


def create_server(
    listen: str,
    enclave_target: str,
    *,
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
    ``enclave_target`` is any gRPC target: ``127.0.0.1:7000``, ``unix:/run/e.sock``,
    ``vsock:3:7000``. Messages above ``max_message_bytes`` are refused with
    RESOURCE_EXHAUSTED in either direction. Each forwarded call keeps the party's
    deadline (capped by ``max_call_seconds`` when given). ``limits`` bound streams
    per connection, calls per peer and connection lifetimes (defaults in
    ``ListenerLimits``); ``workers`` sizes the thread pool for blocking work
    (collateral reads), not the number of calls that can wait.
    """
    if max_message_bytes <= 0:
        raise ValueError("max_message_bytes must be positive")
    if workers <= 0:
        raise ValueError("workers must be positive")
    services = list(services) if services is not None else tcme_services()
    limits = limits or ListenerLimits()
    return loop.run(
        _build(
            listen,
            enclave_target,
            tls=tls,
            max_message_bytes=max_message_bytes,
            collateral_dir=collateral_dir,
            max_call_seconds=max_call_seconds,
            health_interval=health_interval,
            workers=workers,
            services=services,
            limits=limits,
        )
    )


async def _build(
    listen: str,
    enclave_target: str,
    *,
    tls: TlsConfig | None,
    max_message_bytes: int,
    collateral_dir: Path | None,
    max_call_seconds: float | None,
    health_interval: float,
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
    channel = grpc.aio.insecure_channel(enclave_target, options=sizes)
    probe_channel = grpc.insecure_channel(enclave_target, options=sizes)
    monitor = EnclaveHealthMonitor(
        probe_channel, names, interval=health_interval, target=enclave_target
    )
    handler = ForwardingHandler(
        channel,
        method_shapes(services),
        enclave_target=enclave_target,
        response_hooks=attest_hooks(services, collateral_dir),
        max_call_seconds=max_call_seconds,
        on_unavailable=monitor.mark_unavailable,
    )
    server = grpc.aio.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tcme-host"),
        interceptors=(PeerAdmission(limits.calls_per_peer, PRIORITY_METHODS),),
        options=[*sizes, *limits.grpc_options()],
    )
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    enable_reflection((*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    try:
        if tls is not None:
            credentials = grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)])
            port = server.add_secure_port(listen, credentials)
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError as err:  # grpc raises when the address cannot be bound
        await channel.close()
        probe_channel.close()
        raise OSError(f"host proxy could not listen on {listen}: {err}") from err
    if port == 0 and not listen.startswith("unix:"):
        await channel.close()
        probe_channel.close()
        raise OSError(f"host proxy could not listen on {listen}")
    log.info(
        "host proxy on %s (tls=%s) forwarding %d services to %s",
        listen,
        tls is not None,
        len(names),
        enclave_target,
    )
    return HostServer(server, (channel, probe_channel), monitor, port), port


def _close(channel: grpc.Channel | grpc.aio.Channel) -> None:
    if isinstance(channel, grpc.aio.Channel):
        loop.run(channel.close())
    else:
        channel.close()
