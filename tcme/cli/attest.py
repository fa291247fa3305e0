"""``tcme attest HOST --policy FILE``: fetch and verify an enclave's evidence."""

from __future__ import annotations

import argparse
import sys

from attestation.errors import TcmeError, UsageError
from tcme.cli import _party

EXIT_OK = 0
EXIT_REJECT = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme attest``."""
    parser = subparsers.add_parser(
        "attest",
        help="verify an enclave (and optionally a session) under your own policy",
        description=(
            "Ask the enclave behind HOST for evidence over a fresh random nonce, verify it "
            "under the policy (hardware chain, TCB, measurement, simulated only if allowed, "
            "REPORT_DATA binding of claims/contract/session/nonce, model digest and signer, "
            "contract), and print a summary. Exit 0 accept, 1 reject, 2 usage error."
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
    # From here on a ParseError is about what the host sent: a reject (1), not usage (2).
    try:
        with _party.connect(args) as client:
            result = client.attest(policy, args.session)
    except UsageError:
        raise
    except TcmeError as err:
        if args.json:
            _party.print_json(_party.reject_json(err))
        print(f"tcme attest: REJECTED: {err.message()}", file=sys.stderr)
        return EXIT_REJECT
    if args.json:
        _party.print_json(result.summary())
    else:
        _party.print_summary(result)
    return EXIT_OK
