"""``tcme session``: party keys, contracts, and the scripted party side of a session.

    tcme session keygen --out alice.key                     # + alice.key.pub.json
    tcme session contract --template T.json --party-key alice=alice.key.pub.json \\
                          --party-key bob=bob.key.pub.json --out contract.json
    tcme session create HOST --contract contract.json --party alice --key alice.key
                                                            # prints the session id
    tcme session run    HOST --session ID --party alice --key alice.key \\
                             --policy alice.toml --contract contract.json --value 12
    (or: submit ... --state S, then result ... --state S, in separate processes)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import UsageError
from attestation.text import format_sha256
from tcme.cli import _party
from tcme.cli.exitcodes import EXIT_OK

if TYPE_CHECKING:
    from tcme.client import (
        AttestationResult,
        PartyPolicy,
        PartyResult,
        SubmittedInput,
        TcmeClient,
    )
    from tcme.wire import PartyKeys, SealedInput


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme session`` and its commands."""
    group = subparsers.add_parser(
        "session",
        help="party keys, contracts, and scripted session parties",
        epilog="example:\n" + (__doc__ or "").split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Create a session from a contract and act as one party: attest and verify, "
            "seal and submit your input, collect and decrypt your outputs, verify the receipt."
        ),
    )
    sub = group.add_subparsers(dest="session_command", metavar="COMMAND", required=True)

    keygen = sub.add_parser(
        "keygen",
        help="make a party key file (Ed25519 + HPKE) and its public entry",
        description=(
            "Writes FILE (private, 0600) and FILE.pub.json (the contract's parties[] entry)."
        ),
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE")
    keygen.add_argument("--name", required=True, help="party name as the contract will use it")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key file")
    keygen.add_argument("--json", action="store_true", help="print the written paths as JSON")
    keygen.set_defaults(handler=_keygen)

    contract = sub.add_parser(
        "contract",
        help="fill a contract template with the parties' public keys",
        description="Writes the canonical contract and prints its SHA-256 digest.",
    )
    contract.add_argument("--template", type=Path, required=True, metavar="FILE")
    contract.add_argument(
        "--party-key",
        action="append",
        default=[],
        metavar="NAME=PUB",
        help="a party's public entry (FILE.pub.json from keygen); once per party",
    )
    contract.add_argument("--out", type=Path, required=True, metavar="FILE")
    contract.add_argument("--json", action="store_true", help="print the digest as JSON")
    contract.set_defaults(handler=_contract)

    create = sub.add_parser(
        "create",
        help="propose a contract as one of its parties; prints the session id",
        description=(
            "Propose a contract; the request is signed with the proposing party's key "
            "(the enclave opens sessions only for a party of the contract, and limits "
            "each proposer's live sessions). Exit 0 ok, 1 refused, 2 usage."
        ),
    )
    _party.add_connection_args(create)
    create.add_argument("--contract", type=Path, required=True, metavar="FILE")
    create.add_argument(
        "--party", required=True, metavar="NAME", help="the proposing party (named in the contract)"
    )
    create.add_argument(
        "--key", type=Path, required=True, metavar="FILE", help="the proposing party's key file"
    )
    create.add_argument(
        "--session-timeout",
        type=int,
        metavar="S",
        help="how long the session waits for inputs (default and maximum: the contract's)",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create)

    status = sub.add_parser("status", help="a session's state and who has submitted (untrusted)")
    _party.add_connection_args(status)
    status.add_argument("--session", type=_party.session_id_arg, required=True, metavar="ID")
    status.add_argument(
        "--json", action="store_true", help="JSON (the default; accepted for uniformity)"
    )
    status.set_defaults(handler=_status)

    for name, handler, text in (
        ("submit", _submit, "attest, verify, then seal and submit this party's input"),
        ("result", _result, "attest, wait for the result, decrypt it, verify the receipt"),
        ("run", _run, "submit then result in one process"),
    ):
        cmd = sub.add_parser(
            name,
            help=text,
            description=text + ". Exit 0 ok, 1 a check rejected (or the session ended), "
            "2 malformed input or usage, 3 host unreachable.",
        )
        _party.add_connection_args(cmd)
        _party.add_policy_args(cmd)
        cmd.add_argument("--session", type=_party.session_id_arg, required=True, metavar="ID")
        cmd.add_argument("--party", required=True, metavar="NAME")
        cmd.add_argument("--key", type=Path, required=True, metavar="FILE", help="party key file")
        if name != "result":
            cmd.add_argument(
                "--value",
                action="append",
                default=[],
                required=True,
                metavar="V|NAME=V",
                help="this party's input (NAME=V when it has several); never printed",
            )
        if name != "run":
            cmd.add_argument(
                "--state",
                type=Path,
                metavar="FILE",
                help="submit writes, result reads: own input commitment to check in the receipt",
            )
        if name != "submit":
            cmd.add_argument(
                "--wait",
                type=float,
                default=600.0,
                metavar="S",
                help="how long to wait for the other parties and the model (default 600 s)",
            )
        cmd.add_argument("--json", action="store_true", help="print JSON instead of text")
        cmd.add_argument(
            "--quiet", action="store_true", help="do not print the attestation summary"
        )
        cmd.set_defaults(handler=handler)

    abort = sub.add_parser("abort", help="end a session for every party (no output)")
    _party.add_connection_args(abort)
    abort.add_argument("--session", type=_party.session_id_arg, required=True, metavar="ID")
    abort.add_argument("--party", required=True, metavar="NAME")
    abort.add_argument("--key", type=Path, required=True, metavar="FILE")
    abort.add_argument("--json", action="store_true", help="print the session state as JSON")
    abort.set_defaults(handler=_abort)


# -- offline commands ------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    from tcme.wire import PartyKeys

    if args.out.exists() and not args.force:
        raise UsageError("keygen.out", "refusing to overwrite (use --force)", actual=args.out)
    keys = PartyKeys.generate()
    keys.save(args.out)
    public = Path(f"{args.out}.pub.json")
    public.write_text(json.dumps(keys.public_entry(args.name), indent=2) + "\n", encoding="utf-8")
    if args.json:
        _party.print_json({"party": args.name, "private_key": str(args.out), "public": str(public)})
    else:
        print(f"party {args.name}: private keys {args.out} (0600), public entry {public}")
    return EXIT_OK


def _contract(args: argparse.Namespace) -> int:
    from tcme.cli.contract import parse_party_keys
    from tcme.contract.loader import load_contract_bytes

    # The one contract loader: a TOML or JSON template, keys from --party-key files.
    raw = load_contract_bytes(args.template, keys=parse_party_keys(args.party_key))
    args.out.write_bytes(raw)
    from tcme.wire import contract_digest

    digest = contract_digest(raw).hex()
    if args.json:
        _party.print_json({"contract": str(args.out), "digest": digest})
    else:
        print(format_sha256(digest))  # as [contract] digest takes it
    return EXIT_OK


# -- talking to the host ---------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from tcme.contract.loader import load_contract_bytes
    from tcme.wire import PartyKeys

    raw = load_contract_bytes(args.contract)
    keys = PartyKeys.load(args.key)
    with _party.connect(args) as client:
        info = client.create_session(
            raw, proposer=args.party, keys=keys, timeout_seconds=args.session_timeout
        )
    if args.json:
        _party.print_json(
            {
                "session_id": info.session_id.hex(),
                "contract_digest": info.contract_digest.hex(),
                "expires_unix_ms": info.expires_unix_ms,
            }
        )
    else:
        print(info.session_id.hex())
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    with _party.connect(args) as client:
        status = client.get_session(args.session)
    _party.print_json(
        {
            "state": status.state,
            "contract_digest": status.contract_digest.hex(),
            "submitted_parties": list(status.submitted_parties),
            "expires_unix_ms": status.expires_unix_ms,
            "note": "reported by the untrusted host; only a verified receipt proves anything",
        }
    )
    return EXIT_OK


def _show_attestation(args: argparse.Namespace, attestation: AttestationResult) -> None:
    if not args.quiet and not args.json:
        print(f"[{args.party}] attestation verified:")
        _party.print_summary(attestation, prefix=f"[{args.party}]   ")


def _precheck_values(args: argparse.Namespace, path: Path | None) -> None:
    """Check the values (types, ranges, sizes) before any network call, against the
    contract file ``path`` (``--contract``, else the policy's ``[contract] file``).

    Exit 2 on a value the enclave would refuse; when only a digest pins the contract
    the same check runs right after attestation, still before anything is sealed or sent.
    """
    if path is None:
        return
    from tcme.client.values import parse_values
    from tcme.contract.loader import load_contract_bytes
    from tcme.wire import parse_contract

    parse_values(parse_contract(load_contract_bytes(path)), args.party, args.value)


def _attest_and_parse(
    args: argparse.Namespace, client: Any, policy: Any
) -> tuple[AttestationResult, dict[str, Any]]:
    """Attest the session, then type this party's values by its contract (exit 2 if bad).

    The values are checked before anything is printed, sealed or sent.
    """
    from tcme.client.values import parse_values

    attestation = client.attest(policy, args.session)
    if attestation.contract is None:
        raise UsageError("session", "the enclave attested no contract for this session")
    values = parse_values(attestation.contract, args.party, args.value)
    _show_attestation(args, attestation)
    return attestation, values


def _write_state(path: Path, sealed: SealedInput, session_id: bytes) -> None:
    # Commitments only: the plaintext input never touches the disk.
    body = {
        "type": "tcme/v1/party-state",
        "session_id": session_id.hex(),
        "party": sealed.party,
        "commitment": sealed.commitment.hex(),
        "ciphertext_sha256": sealed.ciphertext_sha256.hex(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle)


def _read_state(path: Path, session_id: bytes, party: str) -> SealedInput:
    from tcme.base.encoding import load_json_file
    from tcme.wire import SealedInput

    body = load_json_file(path, "state")
    if (
        not isinstance(body, dict)
        or body.get("type") != "tcme/v1/party-state"
        or body.get("session_id") != session_id.hex()
        or body.get("party") != party
    ):
        raise UsageError("state", f"{path} is not {party!r}'s state for this session")
    from attestation.text import parse_hex

    try:
        commitment = parse_hex(body["commitment"], "state.commitment", size=32)
        digest = parse_hex(body["ciphertext_sha256"], "state.ciphertext_sha256", size=32)
    except (KeyError, UsageError):
        raise UsageError("state", f"{path} is damaged") from None
    return SealedInput(
        party=party,
        enc=b"",
        ciphertext=b"",
        payload=b"",
        signature=b"",
        commitment=commitment,
        ciphertext_sha256=digest,
    )


def _print_result(args: argparse.Namespace, result: PartyResult, checked_own: bool) -> None:
    receipt = result.receipt
    if args.json:
        _party.print_json(
            {
                "party": args.party,
                "outputs": result.outputs,
                "receipt": {
                    "verified": True,
                    "own_input_commitment_checked": checked_own,
                    "contract_digest": receipt.contract_digest.hex(),
                    "claims_digest": receipt.claims_digest.hex(),
                    "inputs_from": [r.party for r in receipt.inputs],
                    "erased": list(receipt.erased),
                },
            }
        )
        return
    for name, value in result.outputs.items():
        print(f"[{args.party}] answer: {name} = {value}")
    if not result.outputs:
        print(f"[{args.party}] no outputs: the contract names this party recipient of none")
    print(
        f"[{args.party}] receipt verified: signed by the attested enclave key; inputs from "
        f"{', '.join(r.party for r in receipt.inputs)}; erased: {', '.join(receipt.erased)}"
        + ("" if checked_own else "; own input commitment NOT checked (no --state)")
    )
    sys.stdout.flush()


def _input_prerequisites(args: argparse.Namespace) -> tuple[PartyKeys, PartyPolicy]:
    # Everything a party can get wrong locally is found before the first network call
    # (exit 2): its values, its key file, its policy.
    from tcme.wire import PartyKeys

    _precheck_values(args, args.contract)
    policy = _party.load_policy(args)
    if args.contract is None and policy.contract is not None:
        _precheck_values(args, policy.contract.file)
    return PartyKeys.load(args.key), policy


def _seal_and_submit(
    args: argparse.Namespace, client: TcmeClient, keys: PartyKeys, policy: PartyPolicy
) -> tuple[AttestationResult, SubmittedInput]:
    attestation, values = _attest_and_parse(args, client, policy)
    return attestation, client.submit_input(attestation, args.party, keys, values)


def _submit(args: argparse.Namespace) -> int:
    keys, policy = _input_prerequisites(args)
    with _party.connect(args) as client:
        _attestation, submitted = _seal_and_submit(args, client, keys, policy)
    if args.state is not None:
        _write_state(args.state, submitted.sealed, args.session)
    if args.json:
        _party.print_json(
            {
                "party": args.party,
                "commitment": submitted.sealed.commitment.hex(),
                "ciphertext_sha256": submitted.sealed.ciphertext_sha256.hex(),
                "inputs_received": submitted.inputs_received,
                "inputs_expected": submitted.inputs_expected,
            }
        )
    else:
        print(
            f"[{args.party}] input sealed to the attested enclave key and accepted "
            f"({submitted.inputs_received}/{submitted.inputs_expected} inputs in)"
        )
    return EXIT_OK


def _result(args: argparse.Namespace) -> int:
    from tcme.wire import PartyKeys

    keys = PartyKeys.load(args.key)
    own = _read_state(args.state, args.session, args.party) if args.state else None
    policy = _party.load_policy(args)
    with _party.connect(args) as client:
        attestation = client.attest(policy, args.session)
        _show_attestation(args, attestation)
        result = client.get_result(attestation, args.party, keys, own, timeout=args.wait)
    _print_result(args, result, own is not None)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    keys, policy = _input_prerequisites(args)
    with _party.connect(args) as client:
        attestation, submitted = _seal_and_submit(args, client, keys, policy)
        if not args.json:
            print(f"[{args.party}] input sealed and accepted; waiting for the other parties")
            sys.stdout.flush()
        result = client.get_result(
            attestation, args.party, keys, submitted.sealed, timeout=args.wait
        )
    _print_result(args, result, True)
    return EXIT_OK


def _abort(args: argparse.Namespace) -> int:
    from tcme.wire import PartyKeys

    keys = PartyKeys.load(args.key)
    with _party.connect(args) as client:
        state = client.abort(args.session, args.party, keys)
    if args.json:
        _party.print_json({"session_id": args.session.hex(), "state": state})
    else:
        print(state)
    return EXIT_OK
