"""``tcme host``: run the untrusted gRPC proxy parties talk to, and check its health."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from attestation.errors import UnreachableError, UsageError
from tcme.cli.config import add_config_option
from tcme.cli.exitcodes import EXIT_OK, EXIT_REJECT, mark_contacted, verdict
from tcme.serving.limits import ListenerLimits

# Trailing metadata key in which the proxy says why it is not serving: host.health.REASON_KEY
# (not imported: `tcme --help` must not load grpc).
HEALTH_REASON_KEY = "tcme-health-reason"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme host serve`` and ``tcme host health``."""
    group = subparsers.add_parser(
        "host",
        help="run the untrusted host proxy (gRPC) in front of an enclave",
        description=(
            "The host proxy is the only listener parties reach. It forwards every tcme.v1 "
            "RPC byte for byte to the enclave, serves cached collateral beside evidence, "
            "health and reflection. It holds no key that opens party data."
        ),
    )
    sub = group.add_subparsers(dest="host_command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="forward tcme.v1 RPCs from LISTEN to the enclave (or a fleet of them)",
        description=(
            "Serve until SIGINT/SIGTERM, then shut down gracefully. With several enclaves "
            "(--enclave repeated, --enclave-dns), CreateSession goes to a SERVING enclave "
            "with the fewest live sessions and every later call of a session to the enclave "
            "whose route tag starts its session id, so any number of proxies can front one "
            "fleet with no shared state. Backend state changes are logged. --listen and "
            "--enclave (or --enclave-dns) are required, on the command line or in --config."
        ),
    )
    serve.add_argument(
        "--listen",
        metavar="ADDR",
        help="host:port (port 0 picks a free port) or unix:/path",
    )
    serve.add_argument(
        "--enclave",
        action="append",
        default=[],
        metavar="TARGET",
        help=(
            "enclave gRPC target: host:port, unix:/path, or vsock:CID:PORT (Linux); repeat "
            "it for a fleet. With one target and no --enclave-dns every call goes to it"
        ),
    )
    serve.add_argument(
        "--enclave-dns",
        action="append",
        default=[],
        metavar="NAME:PORT",
        help=(
            "a DNS name whose every address is an enclave (e.g. a Kubernetes headless "
            "Service), re-resolved every --resolve-seconds; repeatable"
        ),
    )
    serve.add_argument(
        "--resolve-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="how often --enclave-dns names are resolved again (default 5)",
    )
    serve.add_argument(
        "--probe-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help=(
            "how often each enclave is asked for its health, route and load (default 1); "
            "a session's calls fail with UNAVAILABLE within about this long after its "
            "enclave dies"
        ),
    )
    serve.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    serve.add_argument(
        "--collateral-dir",
        type=Path,
        metavar="DIR",
        help="cache of VEK/ASK/ARK certificates served beside evidence that lacks them",
    )
    serve.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest request or response, either direction (default 4 MiB)",
    )
    serve.add_argument(
        "--max-call-seconds",
        type=float,
        metavar="S",
        help="cap on any forwarded call's deadline (default: the party's own deadline)",
    )
    serve.add_argument(
        "--grace", type=float, default=5.0, metavar="S", help="shutdown grace (default 5 s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=32,
        metavar="N",
        help="threads for blocking work such as collateral reads (default 32); "
        "waiting calls hold none",
    )
    serve.add_argument(
        "--max-calls-per-peer",
        type=int,
        default=ListenerLimits.calls_per_peer,
        metavar="N",
        help="calls one peer address may have in flight; more are refused "
        f"(RESOURCE_EXHAUSTED server.peer_busy; default {ListenerLimits.calls_per_peer})",
    )
    serve.add_argument(
        "--peer-call-rate",
        type=float,
        default=ListenerLimits.call_rate_per_peer,
        metavar="N",
        help="calls per second one peer address may start after a burst of twice as many; "
        f"faster ones wait their turn (default {ListenerLimits.call_rate_per_peer:g}; "
        "raise it when many parties share one address)",
    )
    serve.add_argument(
        "--max-connection-age",
        type=float,
        default=ListenerLimits.connection_age_seconds,
        metavar="S",
        help="close each connection after S seconds (clients reconnect); calls still open "
        "on it, such as streams that sent only headers, end "
        f"{ListenerLimits.connection_age_grace_seconds:g} s later "
        f"(default {ListenerLimits.connection_age_seconds:g})",
    )
    serve.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help="write the bound port here once listening (useful with port 0)",
    )
    # --enclave or --enclave-dns: checked in _serve (either one, from flags or the file).
    add_config_option(serve, required=("listen",))
    serve.set_defaults(handler=_serve)

    health = sub.add_parser(
        "health",
        help="ask a proxy whether it (and its enclave) is SERVING",
        description=(
            "Exit 0 when SERVING, 1 when the proxy answers NOT_SERVING (the reason is "
            "printed), 3 when nothing answers (after --wait seconds of retrying)."
        ),
    )
    health.add_argument("host", metavar="HOST", help="proxy address, host:port or unix:/path")
    health.add_argument("--service", default="", help="service name (default: overall)")
    health.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="keep asking up to S seconds"
    )
    health.add_argument("--tls-root", type=Path, metavar="PEM", help="CA certificate for TLS")
    health.add_argument("--json", action="store_true", help="print the answer as JSON")
    health.set_defaults(handler=_health)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from host.server import TlsConfig, create_server

    if not logging.getLogger().handlers:
        # Backend state changes (found, SERVING, draining, gone, dropped) are logged here.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("host.tls", "--tls-cert and --tls-key go together")
    if args.workers <= 0:
        raise UsageError("host.workers", "must be positive", actual=args.workers)
    for flag, value in (
        ("max_calls_per_peer", args.max_calls_per_peer),
        ("peer_call_rate", args.peer_call_rate),
        ("max_connection_age", args.max_connection_age),
    ):
        if value <= 0:
            raise UsageError(f"host.{flag}", "must be positive", actual=value)
    limits = ListenerLimits(
        calls_per_peer=args.max_calls_per_peer,
        call_rate_per_peer=args.peer_call_rate,
        call_burst_per_peer=max(1, round(2 * args.peer_call_rate)),
        connection_age_seconds=args.max_connection_age,
    )
    if args.max_message_bytes <= 0:
        raise UsageError(
            "host.max_message_bytes", "must be positive", actual=args.max_message_bytes
        )
    tls = None
    if args.tls_cert is not None:
        try:
            tls = TlsConfig.from_files(args.tls_cert, args.tls_key)
        except OSError as err:
            raise UsageError("host.tls", f"cannot read TLS files: {err}") from err
    if not args.enclave and not args.enclave_dns:
        raise UsageError(
            "config.required",
            "give --enclave or --enclave-dns on the command line or in --config",
            actual="neither",
        )
    for seconds, name in ((args.resolve_seconds, "resolve"), (args.probe_seconds, "probe")):
        if not seconds > 0:
            raise UsageError(f"host.{name}_seconds", "must be positive", actual=seconds)
    if args.collateral_dir is not None and not args.collateral_dir.is_dir():
        raise UsageError("host.collateral_dir", "not a directory", actual=args.collateral_dir)
    try:
        proxy, port = create_server(
            args.listen,
            args.enclave,
            enclave_dns=args.enclave_dns,
            resolve_interval=args.resolve_seconds,
            health_interval=args.probe_seconds,
            tls=tls,
            max_message_bytes=args.max_message_bytes,
            collateral_dir=args.collateral_dir,
            max_call_seconds=args.max_call_seconds,
            workers=args.workers,
            limits=limits,
        )
    except OSError as err:
        raise UsageError("host.listen", str(err)) from err
    except ValueError as err:  # a malformed --enclave-dns
        raise UsageError("host.enclave_dns", str(err)) from err

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    proxy.start()
    if args.port_file is not None:
        args.port_file.write_text(f"{port}\n")
    where = args.listen if args.listen.startswith("unix:") else f"port {port}"
    print(
        f"tcme host: listening on {where} ({'TLS' if tls else 'plaintext'}), "
        f"forwarding to {proxy.backends.describe()}",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    print("tcme host: shutting down", flush=True)
    proxy.stop(args.grace)
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.tls_root is not None:
        from tcme.cli._party import read_tls_root

        root = read_tls_root(args.tls_root, "host.tls_root")
        channel = grpc.secure_channel(args.host, grpc.ssl_channel_credentials(root))
    else:
        channel = grpc.insecure_channel(args.host)
    mark_contacted()
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + max(args.wait, 0.0)
    status_name, reason, unreachable = "", "", True
    with channel:
        while True:
            try:
                response, call = stub.Check.with_call(
                    health_pb2.HealthCheckRequest(service=args.service), timeout=2.0
                )
                unreachable = False
                status_name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                reason = _reason(call.trailing_metadata())
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError as err:
                code = err.code()
                unreachable = code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
                status_name = code.name
                reason = err.details() or ""
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    if unreachable:
        raise UnreachableError("host.health", f"no answer from {args.host}: {status_name} {reason}")
    serving = status_name == "SERVING"
    why = reason or "the proxy gave no reason"
    if args.json:
        body: dict[str, object] = {
            "host": args.host,
            "service": args.service,
            "status": status_name,
        }
        if reason:
            body["reason"] = reason
        if not serving:  # the failure fields every --json failure has (docs/usage.md)
            body.update(
                verdict=verdict(EXIT_REJECT),
                accepted=False,
                exit_code=EXIT_REJECT,
                check="host.health",
                reasons=[f"host.health: {status_name}: {why}"],
            )
        print(json.dumps(body, indent=2, sort_keys=True))
    elif serving:
        print(status_name)
    else:
        print(f"tcme host health: rejected: host.health: {status_name}: {why}", file=sys.stderr)
    return EXIT_OK if serving else EXIT_REJECT


def _reason(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == HEALTH_REASON_KEY:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ""
