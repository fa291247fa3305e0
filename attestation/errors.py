"""One error tree for everything that can reject evidence.

Every rejection names the check that failed and the expected vs. actual value,
so a party (or an operator reading a log) never sees a bare "invalid".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TcmeError(Exception):
    """Base of every error tcme raises on purpose.

    ``check`` is a short dotted name of the failed check (``reported_tcb.snp``),
    ``expected``/``actual`` the values compared, ``detail`` free text.
    ``violations`` lists every failed check when there are several (all of a
    policy's, all of a schema's), not only the first.
    """

    # A failed session's public error carries the session's signed failure record (set
    # by enclave.disclosure.attach_failure, read by failure_of); None on every other.
    signed_failure: object | None = None

    def __init__(
        self,
        check: str,
        detail: str = "",
        *,
        expected: Any = None,
        actual: Any = None,
        violations: Sequence[TcmeError] | None = None,
    ) -> None:
        self.check = check
        self.detail = detail
        self.expected = expected
        self.actual = actual
        self.violations = list(violations or ())
        super().__init__(self.message())

    def reasons(self) -> list[str]:
        """Every failed check, one line each."""
        if self.violations:
            return [v.message() for v in self.violations]
        return [self.message()]

    def message(self) -> str:
        """All violations joined by ``; ``, or ``check: detail (expected X, got Y)``.

        A side of the comparison that is absent is left out (never ``None``).
        """
        if self.violations:
            return "; ".join(v.message() for v in self.violations)
        parts = [self.check]
        if self.detail:
            parts.append(f": {self.detail}")
        compared = [
            f"{label} {_show(value)}"
            for label, value in (("expected", self.expected), ("got", self.actual))
            if value is not None and value != ""
        ]
        if compared:
            parts.append(f" ({', '.join(compared)})")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``--json`` output and gRPC error details."""
        return {
            "error": type(self).__name__,
            "check": self.check,
            "detail": self.detail,
            "expected": _show(self.expected) if self.expected is not None else None,
            "actual": _show(self.actual) if self.actual is not None else None,
            "message": self.message(),
            **({"reasons": self.reasons()} if self.violations else {}),
        }


class ParseError(TcmeError):
    """The bytes are not well-formed evidence (truncated, bad version, non-zero reserved)."""


class SignatureError(TcmeError):
    """A signature or certificate chain does not verify, or a certificate is not valid now."""


class PolicyError(TcmeError):
    """Genuine evidence whose properties the verifier's policy does not accept.

    ``violations`` lists every failed policy check, not only the first.
    """


class BindingError(TcmeError):
    """REPORT_DATA (or another binding) does not match what the verifier recomputed."""


class UsageError(TcmeError):
    """The caller asked for something impossible (bad option, missing file)."""


class UnreachableError(TcmeError):
    """A service could not be reached or talked to (network, TLS, a stopped backend).

    Nothing was verified or rejected: retrying later, or fixing the address,
    may help. The command line exits 3 for it.
    """


def foreign_error_line(err: BaseException) -> str:
    """A library's exception as one line: its class and the first line of its text.

    Third-party errors (sigstore, model_signing, pyOpenSSL) can span many lines or
    embed whole documents; a tcme message carries only their first line.
    """
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)
