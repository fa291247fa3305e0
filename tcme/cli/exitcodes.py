"""The exit codes of every ``tcme`` command, and which failure gets which (one owner).

    0  accepted / done
    1  a check rejected (evidence, policy, contract rule, receipt, a NOT_SERVING
       health answer), or an internal error: nothing was accepted
    2  malformed input or usage, found before any network call
    3  could not reach or talk to a service (unreachable host, TLS/plaintext
       mismatch, stopped enclave behind the proxy, no answer in time)

A command only raises; ``tcme.cli.main`` is the one place that turns an error
into a message and one of these codes. A malformed reply from a service is a
rejection (1), not a usage error: handlers call :func:`mark_contacted` before
their first network call so the boundary can tell the two apart.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from attestation.errors import ParseError, TcmeError, UnreachableError, UsageError

EXIT_OK = 0
EXIT_REJECT = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

_contacted: ContextVar[bool] = ContextVar("tcme_cli_contacted", default=False)


def mark_contacted() -> None:
    """From now on this command talks to a service: bad bytes are the service's, not ours."""
    _contacted.set(True)


def reset_contacted() -> Token[bool]:
    """Start a command with no service contacted; returns a token for :func:`restore`."""
    return _contacted.set(False)


def restore(token: Token[bool]) -> None:
    """Undo :func:`reset_contacted` (in-process callers such as tests run many commands)."""
    _contacted.reset(token)


def contacted() -> bool:
    """Whether this command has started talking to a service."""
    return _contacted.get()


def exit_code(err: BaseException) -> int:
    """The category of ``err``: see the module docstring."""
    if isinstance(err, UnreachableError):
        return EXIT_UNREACHABLE
    if isinstance(err, UsageError):
        return EXIT_USAGE
    if isinstance(err, ParseError):
        return EXIT_REJECT if contacted() else EXIT_USAGE
    if isinstance(err, TcmeError):
        return EXIT_REJECT
    if isinstance(err, OSError):
        return EXIT_REJECT if contacted() else EXIT_USAGE
    return EXIT_REJECT


def verdict(code: int) -> str:
    """The word ``--json`` output uses for a failure of this category."""
    return {
        EXIT_OK: "ACCEPTED",
        EXIT_REJECT: "REJECTED",
        EXIT_USAGE: "ERROR",
        EXIT_UNREACHABLE: "UNREACHABLE",
    }[code]
