"""The ``tcme`` command line.

Each command group lives in its own module under ``tcme.cli`` and exposes
``register(subparsers)``; a handler returns the process exit code.
Exit codes everywhere: 0 accept/success, 1 reject, 2 malformed input or usage error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from attestation.errors import ParseError, TcmeError, UsageError

EXIT_OK = 0
EXIT_REJECT = 1
EXIT_USAGE = 2

# Command-group modules, in the order `tcme --help` lists them. A module that is
# absent (not written yet) is skipped so the CLI keeps working while it grows.
_GROUPS = (
    "evidence",
    "sim",
    "collateral",
    "model",
    "enclave",
    "host",
    "attest",
    "session",
    "contract",
    "run",
    "measure",
    "doctor",
    "demo",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (never a traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available command group registered."""
    parser = _Parser(
        prog="tcme",
        description=(
            "Trusted Capable Model Environments: verify SEV-SNP/TDX evidence, sign and "
            "verify models, run attested multi-party model sessions."
        ),
        epilog="Exit codes: 0 success/accept, 1 reject, 2 malformed input or usage error.",
    )
    from tcme import __version__

    parser.add_argument("--version", action="version", version=f"tcme {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _GROUPS:
        try:
            module = importlib.import_module(f"tcme.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"tcme.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcme`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except (ParseError, UsageError) as err:
        print(f"tcme: {err.message()}", file=sys.stderr)
        return EXIT_USAGE
    except TcmeError as err:
        # A well-formed request that failed a check: a reject, not a crash.
        print(f"tcme: rejected: {err.message()}", file=sys.stderr)
        return EXIT_REJECT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tcme ... | head` closed our stdout: not an error of ours, and no traceback.
        sys.stderr.close()
        return EXIT_REJECT
    except Exception as err:
        # A bug of ours: fail closed with one line. The message is not printed by
        # default because it could quote a party's input; TCME_DEBUG=1 shows it all.
        if os.environ.get("TCME_DEBUG"):
            raise
        print(
            f"tcme: internal error ({type(err).__name__}); nothing was accepted. "
            "Rerun with TCME_DEBUG=1 for details.",
            file=sys.stderr,
        )
        return EXIT_USAGE
