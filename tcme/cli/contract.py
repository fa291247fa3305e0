"""``tcme contract check FILE`` and ``tcme contract schema``.

``check`` validates a contract file (TOML or JSON, or a directory holding
one) against the file schema and every rule of the contract language, the
information-flow check included, and prints its digest: the value each party
pins in its policy and the enclave binds into its evidence. A template (a
party without keys) is checked in full but has no digest yet; give keys with
``--party-key NAME=FILE`` or ``keys = "FILE"`` in the file.

Exit codes: 0 valid, 1 the contract breaks a rule of the language (check name
and the offending field or flow printed), 2 unreadable or malformed file (every
schema violation listed) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import UsageError
from attestation.text import format_sha256
from tcme.cli.exitcodes import EXIT_OK

if TYPE_CHECKING:
    from tcme.contract.model import Contract, InputSpec, OutputSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme contract check`` and ``tcme contract schema``."""
    group = subparsers.add_parser("contract", help="check contract files; print their digest")
    sub = group.add_subparsers(dest="contract_command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="validate a contract file and print its digest",
        description=(
            "Validate a contract (TOML or JSON, or a directory with contract.toml) against the "
            "schema and all rules, including information flow, and print its SHA-256 digest."
        ),
    )
    check.add_argument("file", type=Path, metavar="FILE", help="contract file or example directory")
    check.add_argument(
        "--party-key",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a party's public entry (FILE.pub.json from `tcme session keygen`) or key file",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.add_argument(
        "--canonical-out", type=Path, metavar="FILE", help="write the canonical contract bytes here"
    )
    check.set_defaults(handler=_check)
    schema = sub.add_parser("schema", help="print the JSON Schema of contract files")
    schema.set_defaults(handler=_schema)


def _schema(_args: argparse.Namespace) -> int:
    from tcme.contract import contract_file_schema

    print(json.dumps(contract_file_schema(), indent=2))
    return EXIT_OK


def parse_party_keys(items: list[str]) -> dict[str, dict[str, Any]]:
    """``NAME=FILE`` arguments → each party's public entry (the file may hold private keys)."""
    from tcme.contract.loader import public_entry_file

    keys: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError("contract.party_key", "expected NAME=FILE", actual=item)
        keys[name] = public_entry_file(name, Path(path))
    return keys


def _check(args: argparse.Namespace) -> int:
    from tcme.contract import contract_flows, load_contract

    loaded = load_contract(args.file, keys=parse_party_keys(args.party_key))
    contract = loaded.contract
    flows = contract_flows(contract)
    if args.canonical_out is not None:
        if loaded.raw is None:
            raise UsageError(
                "contract.canonical_out",
                "a template has no canonical bytes: give every party's keys",
            )
        args.canonical_out.write_bytes(loaded.raw)
    report = _report(loaded.path, contract, loaded.missing_keys, flows)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return EXIT_OK
    _print(report)
    return EXIT_OK


def _input_text(spec: InputSpec) -> str:
    from tcme.contract.constraints import NumberConstraint  # loaded with the contract

    parts = [spec.type]
    constraint = spec.constraint
    if spec.type == "integer":
        parts.append(f"[{spec.minimum}, {spec.maximum}]")
    elif spec.type == "number" and isinstance(constraint, NumberConstraint):
        parts.append(f"[{constraint.minimum}, {constraint.maximum}]")
    elif spec.type == "string":
        parts.append(f"max_len={spec.max_len}")
        max_bytes = getattr(constraint, "max_bytes", None)
        if max_bytes is not None:
            parts.append(f"max_bytes={max_bytes}")
        if spec.pattern is not None:
            parts.append(f"pattern={spec.pattern}")
    elif spec.type == "enum":
        parts.append("[" + ", ".join(spec.values) + "]")
    elif spec.type == "json":
        parts.append(f"schema max_bytes={getattr(constraint, 'max_bytes', '?')}")
    if spec.may_flow_to:
        parts.append("may_flow_to=" + ",".join(spec.may_flow_to))
    return " ".join(parts)


def _output_text(out: OutputSpec) -> str:
    kind = f"enum [{', '.join(out.values)}]" if out.type == "enum" else out.type
    limit = getattr(out.constraint, "max_chars", None)
    if limit is not None:
        kind += f" max_chars={limit}"
    recipients = ", ".join(out.recipients) or "(internal: later turns only)"
    return f"{kind} -> {recipients}"


def _report(
    path: Path, contract: Contract, missing: tuple[str, ...], flows: list[Any]
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "verdict": "VALID",
        "file": str(path),
        "kind": contract.kind,
        "title": contract.title,
        "digest": None if missing else contract.digest.hex(),
        "template_parties_without_keys": list(missing),
        "parties": [p.name for p in contract.parties],
        "inputs": {f"{s.party}.{s.name}": _input_text(s) for s in contract.inputs},
        "outputs": {o.name: _output_text(o) for o in contract.outputs},
        "flows": [
            {
                "output": f.output,
                "recipient": f.recipient,
                "source": f"{f.owner}.{f.source}",
                "ground": f.ground,
            }
            for f in flows
        ],
        "decoding": {
            "temperature": contract.decoding.temperature,
            "seed": contract.decoding.seed,
            "max_tokens": contract.decoding.max_tokens,
            "stop": list(contract.decoding.stop),
        },
        "capability_tests": len(contract.capability_tests),
        "capability_token_budget": contract.capability_token_budget,
        "min_score_percent": contract.min_score_percent,
        "timeout_seconds": contract.timeout_seconds,
    }
    return report


def _print(report: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("contract", f"VALID  {report['file']}"),
        ("kind", report["kind"] + (f"  ({report['title']})" if report["title"] else "")),
    ]
    if report["digest"]:
        rows.append(("digest", format_sha256(report["digest"])))
    else:
        missing = ", ".join(report["template_parties_without_keys"])
        rows.append(
            (
                "digest",
                f"none yet: template, no keys for {missing} "
                '(add keys = "FILE" per party, or --party-key NAME=FILE)',
            )
        )
    rows.append(("parties", ", ".join(report["parties"])))
    for index, (name, text) in enumerate(report["inputs"].items()):
        rows.append(("inputs" if index == 0 else "", f"{name}: {text}"))
    for index, (name, text) in enumerate(report["outputs"].items()):
        rows.append(("outputs" if index == 0 else "", f"{name}: {text}"))
    grouped: dict[tuple[str, str], list[str]] = {}
    for flow in report["flows"]:
        grouped.setdefault((flow["output"], flow["recipient"]), []).append(
            f"{flow['source']} ({flow['ground']})"
        )
    for index, ((output, recipient), sources) in enumerate(grouped.items()):
        rows.append(
            ("flows" if index == 0 else "", f"{output} -> {recipient}: {', '.join(sources)}")
        )
    if report["kind"] != "general":
        rows.append(("flows", "enum-decision: the one output goes to its listed recipients"))
    decoding = report["decoding"]
    rows.append(
        (
            "decoding",
            f"temperature 0, seed {decoding['seed']}, max_tokens {decoding['max_tokens']}"
            + (f", stop {decoding['stop']}" if decoding["stop"] else ""),
        )
    )
    if report["capability_tests"]:
        rows.append(
            (
                "capability",
                f"{report['capability_tests']} test(s), enclave minimum "
                f"{report['min_score_percent']}%, token budget "
                f"{report['capability_token_budget']}",
            )
        )
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    sys.stdout.flush()
