"""The ``tcme`` command line.

Each command group lives in its own module under ``tcme.cli`` and exposes
``register(subparsers)``; a handler returns the process exit code or raises.
``main`` is the one error boundary: it turns every error into one message (or
one JSON document with ``--json``) and an exit code by category
(``tcme.cli.exitcodes``): 0 accepted, 1 a check rejected, 2 malformed input or
usage, 3 could not reach or talk to a service.

Group modules import only the standard library and ``attestation.errors`` at
module level, so ``tcme --help`` and ``tcme --version`` stay fast; each handler
imports what it needs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, NoReturn

from attestation.errors import TcmeError
from tcme.cli.exitcodes import (
    EXIT_OK,
    EXIT_REJECT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    exit_code,
    reset_contacted,
    restore,
    verdict,
)

__all__ = ["EXIT_OK", "EXIT_REJECT", "EXIT_UNREACHABLE", "EXIT_USAGE", "build_parser", "main"]

# Command-group modules, in the order `tcme --help` lists them.
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
)

EPILOG = (
    "exit codes: 0 accepted, 1 a check rejected, 2 malformed input or usage, "
    "3 could not reach or talk to a service"
)


# Whether the command line being parsed asks for --json: a command line argparse refuses
# is answered in JSON too (one document on stdout), as every other failure is.
_WANTS_JSON: ContextVar[bool] = ContextVar("tcme_cli_wants_json", default=False)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with its usage and one line naming the error (never a traceback)."""

    def error(self, message: str) -> NoReturn:
        if _WANTS_JSON.get():
            reason = f"usage: {self.prog}: {message}"
            body = {
                "verdict": verdict(EXIT_USAGE),
                "accepted": False,
                "exit_code": EXIT_USAGE,
                "check": "usage",
                "detail": f"{self.prog}: {message}",
                "message": reason,
                "reasons": [reason],
            }
            print(json.dumps(body, indent=2, sort_keys=True), flush=True)
            raise SystemExit(EXIT_USAGE)
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every command group registered."""
    parser = _Parser(
        prog="tcme",
        description=(
            "Trusted Capable Model Environments: verify SEV-SNP/TDX evidence, sign and "
            "verify models, run attested multi-party model sessions."
        ),
        epilog=EPILOG,
    )
    from tcme import __version__

    parser.add_argument("--version", action="version", version=f"tcme {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _GROUPS:
        importlib.import_module(f"tcme.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tcme`` console script: the one error boundary."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    wants_json = _WANTS_JSON.set("--json" in words)
    try:
        args = parser.parse_args(words)
    finally:
        _WANTS_JSON.reset(wants_json)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    token = reset_contacted()
    try:
        if getattr(args, "config_parser", None) is not None:
            from tcme.cli.config import apply_config

            apply_config(args, sys.argv[1:] if argv is None else list(argv))
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tcme ... | head` closed our stdout: not an error of ours, and no traceback.
        sys.stderr.close()
        return EXIT_REJECT
    except TcmeError as err:
        return report_error(args, err)
    except OSError as err:
        # A file we were told to read or write (names are the caller's, not secrets).
        where = f" {err.filename}" if err.filename else ""
        failure = TcmeError(
            "file" if err.filename else "io", f"cannot use{where}: {err.strerror or err}"
        )
        code = exit_code(err)
        _print_failure(args, code, failure.reasons(), failure)
        return code
    except Exception as err:
        # A bug of ours: fail closed with one line. The message is not printed by
        # default because it could quote a party's input; TCME_DEBUG=1 shows it all.
        if os.environ.get("TCME_DEBUG"):
            raise
        reason = (
            f"internal error ({type(err).__name__}); nothing was accepted. "
            "Rerun with TCME_DEBUG=1 for details."
        )
        _print_failure(args, EXIT_REJECT, [reason], None, label="failed")
        return EXIT_REJECT
    finally:
        restore(token)


def report_error(args: argparse.Namespace, err: TcmeError) -> int:
    """Print ``err`` (every reason, or one JSON document) and return its exit code."""
    code = exit_code(err)
    _print_failure(args, code, reasons(err), err)
    return code


def reasons(err: TcmeError) -> list[str]:
    """Every reason of a failure, one line each (all violations, not only the first)."""
    return err.reasons()


_PREFIX = {
    EXIT_REJECT: "rejected",
    EXIT_USAGE: "error",
    EXIT_UNREACHABLE: "unreachable",
}


def _print_failure(
    args: argparse.Namespace,
    code: int,
    lines: list[str],
    err: TcmeError | None,
    *,
    label: str | None = None,
) -> None:
    command = " ".join(
        part
        for part in (getattr(args, "command", None), _subcommand(args))
        if isinstance(part, str)
    )
    prog = f"tcme {command}".rstrip()
    if getattr(args, "json", False):
        body: dict[str, Any] = {
            "verdict": verdict(code),
            "accepted": False,
            "exit_code": code,
            "reasons": lines,
        }
        if err is not None:
            body.update({k: v for k, v in err.to_dict().items() if v is not None})
        else:
            body["message"] = lines[0]
        print(json.dumps(body, indent=2, sort_keys=True, default=str), flush=True)
        return  # one document on stdout is the whole answer
    for line in lines:
        print(f"{prog}: {label or _PREFIX[code]}: {line}", file=sys.stderr)
    sys.stderr.flush()


def _subcommand(args: argparse.Namespace) -> str | None:
    command = getattr(args, "command", None)
    return getattr(args, f"{command}_command", None) if command else None
