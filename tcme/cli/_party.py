"""Shared pieces of the party-side commands (``tcme attest``, ``tcme session``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import UsageError
from attestation.text import format_sha256
from tcme.cli.exitcodes import mark_contacted

if TYPE_CHECKING:
    from tcme.client import AttestationResult, PartyPolicy, TcmeClient


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """HOST plus TLS and timeout options."""
    parser.add_argument("host", metavar="HOST", help="host proxy address: host:port or unix:/path")
    parser.add_argument(
        "--tls-root", type=Path, metavar="PEM", help="CA certificate: connect with TLS"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="per-call deadline (default 30 s)"
    )


def add_policy_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--policy and an optional --contract pin."""
    parser.add_argument(
        "--policy",
        type=Path,
        required=required,
        metavar="FILE",
        help="party policy TOML: evidence reference values, [model], [contract]",
    )
    parser.add_argument(
        "--contract",
        type=Path,
        metavar="FILE",
        help="the contract this party agreed to (overrides the policy's [contract])",
    )


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[TcmeClient]:
    """A client for ``args.host`` with the TLS/timeout options.

    Everything inside the ``with`` talks to the host: from here on a malformed
    answer is the host's (a rejection), not the caller's input.
    """
    from tcme.client import TcmeClient

    root = read_tls_root(args.tls_root, "tls_root") if args.tls_root is not None else None
    if args.timeout <= 0:
        raise UsageError("timeout", "must be positive", actual=args.timeout)
    client = TcmeClient(args.host, tls_root=root, timeout=args.timeout)
    mark_contacted()
    with client:
        yield client


def read_tls_root(path: Path, check: str) -> bytes:
    """The CA certificate(s) of ``--tls-root``, checked before any connection is made.

    A file that holds no PEM certificate is bad input (exit 2), not a host that
    cannot be reached: gRPC would only fail every handshake with UNAVAILABLE.
    """
    from cryptography import x509

    from attestation.inputs import read_input

    data = read_input(path, check)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(
            check, f"{path} holds no PEM certificate", expected="-----BEGIN CERTIFICATE-----"
        ) from None
    return data


def load_policy(args: argparse.Namespace) -> PartyPolicy:
    """The party policy, pinned to ``--contract`` when given."""
    from tcme.client import PartyPolicy
    from tcme.client.policy import ContractExpectation

    policy = PartyPolicy.load(args.policy)
    if getattr(args, "contract", None) is not None:
        policy = policy.with_contract(ContractExpectation.from_file(args.contract))
    return policy


def session_id_arg(text: str) -> bytes:
    """Parse a hex session id (argparse type)."""
    from attestation.text import parse_hex

    try:
        raw = parse_hex(text, "--session")
    except UsageError as err:
        raise argparse.ArgumentTypeError(err.message()) from None
    if not raw:
        raise argparse.ArgumentTypeError("session id must not be empty")
    return raw


def print_summary(result: AttestationResult, *, prefix: str = "", stream: Any = None) -> None:
    """The human verification summary, one fact per line."""
    out = stream or sys.stdout
    s = result.summary()
    tee = s["tee"] + (
        "  [SIMULATED: no real TEE; accepted only because the policy allows it]"
        if s["simulated"]
        else ""
    )
    rows = [
        ("verdict", s["verdict"]),
        ("TEE", tee),
        ("simulated", "YES" if s["simulated"] else "no"),
        ("TCB", _show(s["tcb"])),
        ("measurement", _show(s["measurement"])),
        ("model root digest", format_sha256(s["model_root_digest"])),
        ("model signer", f"{_show(s['model_signer'])} ({_show(s['model_signing_method'])})"),
        ("runtime", _show(s["runtime"])),
        ("session", s["session_id"] or "none (enclave only)"),
        (
            "contract digest",
            format_sha256(s["contract_digest"]) if s["contract_digest"] else "none (no session)",
        ),
    ]
    if s.get("capability"):
        budget = s.get("capability_token_budget")
        rows.append(
            (
                "capability score",
                f"{s['capability']} tests passed" + (f" (token budget {budget})" if budget else ""),
            )
        )
    gpus = s.get("gpus")
    if gpus:
        for position, gpu in enumerate(gpus["gpus"]):
            simulated = "  [SIMULATED]" if gpu["simulated"] else ""
            rows.append(
                (
                    f"GPU {position}",
                    f"{gpu['arch']} {gpu['hwmodel']}, driver {gpu['driver_version']}, "
                    f"VBIOS {gpu['vbios_version']}, ueid {gpu['ueid']}{simulated}",
                )
            )
        if gpus["switches"]:
            rows.append(("NVSwitches", f"{len(gpus['switches'])} (protected PCIe)"))
    root = s.get("evidence_root_sha256")
    if s["simulated"] and root:
        # What a party pins as `simulated_ark_sha256` (docs/usage.md says where it comes from).
        rows.append(("simulated root", f"ARK sha256 {root}"))
    # Every check the policy skips, on every summary (docs/security.md "Fail-closed rules").
    skipped = s.get("skipped") or []
    rows.append(
        (
            "skipped checks",
            ", ".join(skipped) + "  ({ skip = true } in the policy)" if skipped else "none",
        )
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{prefix}{key:<{width}}  {value}", file=out)
    out.flush()


def _show(value: Any) -> str:
    """A summary value as text; an absent one reads "none", never "None"."""
    if value is None or value == "":
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "none"
    return str(value)


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str), flush=True)
