"""``tcme attest HOST --policy FILE``: fetch and verify an enclave's evidence."""

from __future__ import annotations

import argparse

from tcme.cli import _party
from tcme.cli.exitcodes import EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme attest``."""
    parser = subparsers.add_parser(
        "attest",
        help="verify an enclave (and optionally a session) under your own policy",
        description=(
            "Ask the enclave behind HOST for evidence over a fresh random nonce, verify it "
            "under the policy (hardware chain, TCB, measurement, simulated only if allowed, "
            "REPORT_DATA binding of claims/contract/session/nonce, model digest and signer, "
            "contract), and print a summary. Exit 0 accept, 1 reject, 2 usage error, "
            "3 host unreachable."
        ),
    )
    _party.add_connection_args(parser)
    _party.add_policy_args(parser)
    parser.add_argument(
        "--session",
        type=_party.session_id_arg,
        default=b"",
        metavar="ID",
        help="also verify this session's contract (hex id from `tcme session create`)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_attest)


def _attest(args: argparse.Namespace) -> int:
    policy = _party.load_policy(args)
    with _party.connect(args) as client:
        result = client.attest(policy, args.session)
    if args.json:
        _party.print_json(result.summary())
    else:
        _party.print_summary(result)
    return EXIT_OK
