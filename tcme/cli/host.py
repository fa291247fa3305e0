"""``tcme host``: run the untrusted gRPC proxy parties talk to, and check its health."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from attestation.errors import UnreachableError, UsageError
from tcme.cli.exitcodes import EXIT_OK, EXIT_REJECT, mark_contacted

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
        help="forward tcme.v1 RPCs from LISTEN to the enclave",
        description="Serve until SIGINT/SIGTERM, then shut down gracefully.",
    )
    serve.add_argument(
        "--listen",
        required=True,
        metavar="ADDR",
        help="host:port (port 0 picks a free port) or unix:/path",
    )
    serve.add_argument(
        "--enclave",
        required=True,
        metavar="TARGET",
        help="enclave gRPC target: host:port, unix:/path, or vsock:CID:PORT (Linux)",
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
        help="concurrent calls (each waiting GetResult holds one; default 32)",
    )
    serve.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help="write the bound port here once listening (useful with port 0)",
    )
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
    from host.server import TlsConfig, create_server

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("host.tls", "--tls-cert and --tls-key go together")
    if args.workers <= 0:
        raise UsageError("host.workers", "must be positive", actual=args.workers)
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
    if args.collateral_dir is not None and not args.collateral_dir.is_dir():
        raise UsageError("host.collateral_dir", "not a directory", actual=args.collateral_dir)
    try:
        proxy, port = create_server(
            args.listen,
            args.enclave,
            tls=tls,
            max_message_bytes=args.max_message_bytes,
            collateral_dir=args.collateral_dir,
            max_call_seconds=args.max_call_seconds,
            workers=args.workers,
        )
    except OSError as err:
        raise UsageError("host.listen", str(err)) from err

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
        f"forwarding to enclave {args.enclave}",
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
        try:
            root = args.tls_root.read_bytes()
        except OSError as err:
            raise UsageError(
                "host.tls_root", f"cannot read {args.tls_root}: {err.strerror}"
            ) from err
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
    if args.json:
        body = {"host": args.host, "service": args.service, "status": status_name}
        if reason:
            body["reason"] = reason
        print(json.dumps(body, indent=2, sort_keys=True))
    elif serving:
        print(status_name)
    else:
        why = reason or "the proxy gave no reason"
        print(f"tcme host health: {status_name}: {why}", file=sys.stderr)
    return EXIT_OK if serving else EXIT_REJECT


def _reason(metadata: object) -> str:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == HEALTH_REASON_KEY:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ""
