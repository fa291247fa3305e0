"""``tcme enclave serve``: run the enclave service (inside a CVM, or simulated).

The enclave verifies the signed model, loads exactly the verified bytes,
creates its keys in memory, and serves ``tcme.v1.Tcme`` to the host proxy.
It never logs inputs, prompts or outputs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from attestation.errors import UsageError
from tcme.cli.config import add_config_option

log = logging.getLogger("tcme.enclave")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme enclave serve``."""
    group = subparsers.add_parser("enclave", help="run the enclave service")
    sub = group.add_subparsers(dest="enclave_command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve tcme.v1.Tcme: attest, sessions, inputs, results",
        description=(
            "Verify the signed model, load it, create in-memory keys and serve sessions. "
            "Only the host proxy should reach ADDR (127.0.0.1, a Unix socket, or vsock). "
            "--listen, --model, --signature and one trust option are required, on the "
            "command line or in --config."
        ),
    )
    serve.add_argument("--listen", metavar="ADDR", help="HOST:PORT (port 0 picks one) or unix:PATH")
    serve.add_argument("--model", type=Path, help="GGUF file (or model directory)")
    serve.add_argument("--signature", type=Path, help="OpenSSF model signature bundle")
    who = serve.add_argument_group(
        "whom to trust for the model (exactly one; on the command line or in --config)"
    )
    who.add_argument("--public-key", type=Path, metavar="PEM", help="verify a key-signed model")
    who.add_argument(
        "--certificate-chain",
        type=Path,
        nargs="+",
        metavar="PEM",
        help="verify a certificate-signed model against these CA certificates",
    )
    who.add_argument(
        "--sigstore-identity",
        metavar="IDENTITY",
        help="verify a Sigstore keyless signature by this identity",
    )
    serve.add_argument(
        "--sigstore-issuer", metavar="URL", help="OIDC issuer for --sigstore-identity"
    )
    serve.add_argument("--trust-config", type=Path, help="offline Sigstore trust config (JSON)")
    serve.add_argument(
        "--simulated",
        action="store_true",
        help="use the SIMULATED SEV-SNP provider (no hardware; CI and laptops)",
    )
    serve.add_argument("--sim-dir", type=Path, help="simulated key directory (with --simulated)")
    serve.add_argument(
        "--gpu",
        choices=("none", "nvml", "simulated"),
        default="none",
        help="GPU evidence (docs/gpu.md): none (default), nvml (NVIDIA GPUs in CC mode on this "
        "CVM; needs nvidia-ml-py) or simulated (SIMULATED GPUs; CI and laptops)",
    )
    serve.add_argument(
        "--gpu-count", type=int, default=1, metavar="N", help="with --gpu simulated: N GPUs"
    )
    serve.add_argument(
        "--n-gpu-layers",
        type=int,
        default=0,
        metavar="N",
        help="offload N model layers (-1: all) to the attested GPU; needs a CUDA build of "
        "llama-cpp-python (docs/gpu.md) and --gpu nvml: a model is never offloaded to a GPU "
        "the parties cannot verify",
    )
    serve.add_argument("--n-ctx", type=int, default=2048, help="model context size (tokens)")
    serve.add_argument(
        "--max-sessions", type=int, default=64, help="live (open or running) sessions in all"
    )
    serve.add_argument(
        "--max-sessions-per-proposer",
        type=int,
        default=8,
        help="live sessions one proposer key may hold (finished ones free their slot at once)",
    )
    serve.add_argument(
        "--proposers",
        type=Path,
        metavar="FILE",
        help="only these party keys may open sessions: one public entry (keygen's "
        "FILE.pub.json) or a JSON list of them; default: any party of the contract",
    )
    serve.add_argument(
        "--retention-seconds",
        type=float,
        default=300.0,
        help="how long a finished session's ciphertext waits to be collected",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help=(
            "on SIGTERM: report NOT_SERVING, refuse new sessions and let live sessions "
            "finish for up to S seconds before exiting (default 30; a second signal, or "
            "SIGINT, stops at once). Keep Kubernetes' terminationGracePeriodSeconds above it"
        ),
    )
    serve.add_argument(
        "--ready-file", type=Path, help="write the bound address here once serving (for scripts)"
    )
    add_config_option(serve, required=("listen", "model", "signature"))
    serve.set_defaults(handler=_serve)


def _verifier(args: argparse.Namespace):  # noqa: ANN202 - tcme.model.ModelVerifier
    from tcme.model import ModelVerifier

    chosen = [
        flag
        for flag, value in (
            ("--public-key", args.public_key),
            ("--certificate-chain", args.certificate_chain),
            ("--sigstore-identity", args.sigstore_identity),
        )
        if value
    ]
    if len(chosen) != 1:
        raise UsageError(
            "enclave.trust",
            "name exactly one of --public-key, --certificate-chain, --sigstore-identity",
            actual=", ".join(chosen) or "none",
        )
    if args.public_key is not None:
        return ModelVerifier.public_key(args.public_key)
    if args.certificate_chain:
        return ModelVerifier.certificate_chain(args.certificate_chain)
    if not args.sigstore_issuer:
        raise UsageError("enclave.sigstore_issuer", "--sigstore-identity needs --sigstore-issuer")
    return ModelVerifier.sigstore(args.sigstore_identity, args.sigstore_issuer, args.trust_config)


def _proposer_keys(path: Path | None) -> frozenset[bytes] | None:
    """Ed25519 keys from keygen public entries (one object or a list); None: no allow-list."""
    if path is None:
        return None
    import base64
    import binascii
    import json

    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(
            "enclave.proposers", f"cannot read {path} as JSON ({type(err).__name__})"
        ) from None
    entries = body if isinstance(body, list) else [body]
    keys = set()
    for entry in entries:
        try:
            key = base64.b64decode(entry["signing_key"], validate=True)
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise UsageError(
                "enclave.proposers", f"{path} holds an entry without a base64 signing_key"
            ) from None
        if len(key) != 32:
            raise UsageError(
                "enclave.proposers", "not an Ed25519 public key", expected=32, actual=len(key)
            )
        keys.add(key)
    if not keys:
        raise UsageError("enclave.proposers", f"{path} names no proposer key")
    return frozenset(keys)


def _serve(args: argparse.Namespace) -> int:
    if args.n_gpu_layers and args.gpu != "nvml":
        raise UsageError(
            "enclave.n_gpu_layers",
            "offloading to a GPU needs an attested GPU in CC mode (--gpu nvml)",
            expected="--gpu nvml",
            actual=f"--gpu {args.gpu}",
        )
    if args.sim_dir is not None and not args.simulated:
        raise UsageError("enclave.sim_dir", "--sim-dir only makes sense with --simulated")
    verifier = _verifier(args)  # every usage error before anything is created
    from enclave.server import check_listen_address

    check_listen_address(args.listen)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    from attestation.providers.nvidia_gpu import select_gpu_provider
    from attestation.providers.select import select_provider
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.admission import Admission
    from enclave.fleet import drain
    from enclave.inference import Inference
    from enclave.model_loader import load_verified_model
    from enclave.runtime import Enclave
    from enclave.server import create_server, shutdown

    provider, why = select_provider(simulated=args.simulated, sim_dir=args.sim_dir)
    log.info("%s", why)
    gpu_provider = select_gpu_provider(args.gpu, count=args.gpu_count)
    if gpu_provider is not None:
        log.info("GPU evidence from %s", gpu_provider.name)
    if provider.simulated:
        from attestation.providers.select import DEFAULT_SIM_DIR

        where = (args.sim_dir or DEFAULT_SIM_DIR).expanduser()
        root = getattr(provider, "ark_sha256", None)
        pin = f'; parties pin its root with simulated_ark_sha256 = ["{root}"]' if root else ""
        print(
            "tcme enclave: SIMULATED mode: evidence is signed by a local simulated chain and "
            f"proves nothing about hardware. The chain and its private keys are in {where}" + pin,
            file=sys.stderr,
            flush=True,
        )
    if isinstance(provider, SimulatedSnpProvider):
        # What a party pins to accept this simulated enclave, and only it (docs/security.md).
        print(
            'tcme enclave: party policy: accept = ["sev-snp"], allow_simulated = true, '
            f'simulated_ark_sha256 = ["{provider.ark_sha256}"], '
            f'[snp] allowed_measurements = ["{provider.measurement.hex()}"]',
            file=sys.stderr,
            flush=True,
        )
    loaded = load_verified_model(
        args.model, args.signature, verifier, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers
    )
    try:
        enclave = Enclave(
            provider=provider,
            model=loaded.identity,
            runner=Inference(loaded.llama).run,
            gpu_provider=gpu_provider,
            max_sessions=args.max_sessions,
            max_sessions_per_proposer=args.max_sessions_per_proposer,
            retention_seconds=args.retention_seconds,
            admission=Admission(allowed_proposers=_proposer_keys(args.proposers)),
        )
        server, port = create_server(args.listen, enclave)
        server.start()
        bound = args.listen if port == 0 else f"{args.listen.rsplit(':', 1)[0]}:{port}"
        log.info(
            "model %s (signer %s); claims digest %s",
            loaded.identity.root_digest,
            loaded.identity.signer,
            enclave.claims_digest.hex(),
        )
        if args.ready_file is not None:
            args.ready_file.write_text(bound + "\n", encoding="utf-8")
        print(f"tcme enclave listening on {bound}", flush=True)
        log.info("route tag %s (every session id starts with it)", enclave.route.hex())
        stop = threading.Event()
        terminate = threading.Event()
        interrupt = threading.Event()

        def _on_term(*_: object) -> None:
            if terminate.is_set():
                interrupt.set()  # a second SIGTERM: stop draining
            terminate.set()
            stop.set()

        def _on_int(*_: object) -> None:
            interrupt.set()
            stop.set()

        signal.signal(signal.SIGTERM, _on_term)
        signal.signal(signal.SIGINT, _on_int)
        stop.wait()
        if terminate.is_set() and not interrupt.is_set():
            drain(
                enclave,
                server.health_servicer,
                args.drain_seconds,
                interrupted=interrupt,
            )
        log.info("shutting down: dropping every session")
        shutdown(server, enclave)
    finally:
        loaded.close()
    return 0
