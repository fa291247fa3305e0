"""Assemble the untrusted host proxy: forwarding, health, reflection, limits, TLS.

Parties reach only this listener. It forwards every ``tcme.v1`` RPC to the
enclave over TCP, a Unix socket (``unix:/path``) or vsock (``vsock:CID:PORT``,
supported by gRPC on Linux), and holds no key that could open party data.
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
from grpc_reflection.v1alpha import reflection

from host.collateral import attest_hooks
from host.forward import ForwardingHandler
from host.health import EnclaveHealthMonitor
from host.services import method_shapes, tcme_services

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_WORKERS = 32


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
        server: grpc.Server,
        channel: grpc.Channel,
        monitor: EnclaveHealthMonitor,
        port: int,
    ) -> None:
        self.server = server
        self.port = port
        self._channel = channel
        self.health = monitor

    def start(self) -> None:
        """Start serving and probing the enclave."""
        self.server.start()
        self.health.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING, let calls in flight finish for ``grace`` seconds, then close."""
        self.health.stop()
        done = self.server.stop(grace)
        done.wait()
        self._channel.close()
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
) -> tuple[HostServer, int]:
    """Build (not start) the proxy listening on ``listen``; returns it and the bound port.

    ``listen`` is ``host:port`` (port 0 picks a free one) or ``unix:/path``.
    ``enclave_target`` is any gRPC target: ``127.0.0.1:7000``, ``unix:/run/e.sock``,
    ``vsock:3:7000``. Messages above ``max_message_bytes`` are refused with
    RESOURCE_EXHAUSTED in either direction. Each forwarded call keeps the party's
    deadline (capped by ``max_call_seconds`` when given).
    """
    if max_message_bytes <= 0:
        raise ValueError("max_message_bytes must be positive")
    services = list(services) if services is not None else tcme_services()
    names = [s.full_name for s in services]
    limits = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    channel = grpc.insecure_channel(enclave_target, options=limits)
    monitor = EnclaveHealthMonitor(channel, names, interval=health_interval, target=enclave_target)
    handler = ForwardingHandler(
        channel,
        method_shapes(services),
        enclave_target=enclave_target,
        response_hooks=attest_hooks(services, collateral_dir),
        max_call_seconds=max_call_seconds,
        on_unavailable=monitor.mark_unavailable,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tcme-host"),
        options=limits,
    )
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        if tls is not None:
            credentials = grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)])
            port = server.add_secure_port(listen, credentials)
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError as err:  # grpc raises when the address cannot be bound
        channel.close()
        raise OSError(f"host proxy could not listen on {listen}: {err}") from err
    if port == 0:
        channel.close()
        raise OSError(f"host proxy could not listen on {listen}")
    log.info(
        "host proxy on %s (tls=%s) forwarding %d services to %s",
        listen,
        tls is not None,
        len(names),
        enclave_target,
    )
    return HostServer(server, channel, monitor, port), port
