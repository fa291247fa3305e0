"""Shared pieces of the party-side commands (``tcme attest``, ``tcme session``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attestation.errors import TcmeError, UsageError
from tcme.client import AttestationResult, PartyPolicy, TcmeClient
from tcme.client.policy import ContractExpectation
from tcme.wire import Contract


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


def connect(args: argparse.Namespace) -> TcmeClient:
    """A client for ``args.host`` with the TLS/timeout options."""
    if args.tls_root is not None and not args.tls_root.is_file():
        raise UsageError("tls_root", "no such file", actual=args.tls_root)
    return TcmeClient(args.host, tls_root=args.tls_root, timeout=args.timeout)


def load_policy(args: argparse.Namespace) -> PartyPolicy:
    """The party policy, pinned to ``--contract`` when given."""
    policy = PartyPolicy.load(args.policy)
    if getattr(args, "contract", None) is not None:
        policy = policy.with_contract(ContractExpectation.from_file(args.contract))
    return policy


def session_id_arg(text: str) -> bytes:
    """Parse a hex session id (argparse type)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("session id must be hex") from None
    if not raw:
        raise argparse.ArgumentTypeError("session id must not be empty")
    return raw


def parse_values(contract: Contract, party: str, given: Sequence[str]) -> dict[str, Any]:
    """``--value`` arguments as the contract types them (``V``, or ``NAME=V`` per input).

    The values are never echoed in errors: they are the party's secret.
    """
    specs = {spec.name: spec for spec in contract.inputs_of(party)}
    if not specs:
        raise UsageError("input.party", f"the contract names no input for {party!r}")
    pairs: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            if len(specs) != 1:
                raise UsageError(
                    "input.value",
                    "this party has several inputs: give each as NAME=VALUE",
                    expected=sorted(specs),
                )
            name, value = next(iter(specs)), item
        if name not in specs:
            raise UsageError(
                "input.name", "not an input of this party", expected=sorted(specs), actual=name
            )
        if name in pairs:
            raise UsageError("input.name", "given twice", actual=name)
        pairs[name] = value
    missing = sorted(set(specs) - set(pairs))
    if missing:
        raise UsageError("input.missing", "no value given", expected=missing)
    values: dict[str, Any] = {}
    for name, text in pairs.items():
        if specs[name].type == "integer":
            try:
                values[name] = int(text, 10)
            except ValueError:
                raise UsageError(
                    "input.type", f"input {name!r} must be a decimal integer"
                ) from None
        elif specs[name].type == "json":
            # A JSON input arrives as JSON text on the command line; the contract's
            # schema then checks the parsed value (in the client and the enclave).
            try:
                values[name] = json.loads(text)
            except ValueError:
                raise UsageError("input.type", f"input {name!r} must be JSON text") from None
        else:
            values[name] = text
    return values


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
        ("model root digest", s["model_root_digest"]),
        ("model signer", f"{s['model_signer']} ({s['model_signing_method']})"),
        ("runtime", s["runtime"]),
        ("session", s["session_id"] or "none (enclave only)"),
        ("contract digest", s["contract_digest"] or "none (no session)"),
        (
            "skipped checks",
            ", ".join(s["skipped"]) + "  ({ skip = true } in the policy)"
            if s["skipped"]
            else "none",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{prefix}{key:<{width}}  {value}", file=out)
    out.flush()


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str), flush=True)


def reject_json(err: TcmeError) -> dict[str, Any]:
    """The --json form of a rejection."""
    return {"verdict": "REJECTED", **err.to_dict()}
