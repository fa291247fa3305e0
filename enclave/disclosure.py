"""Which error a failed session shows to whom (docs/security.md, "Error disclosure").

An error raised while checking a party's signed input, or while checking an
output the model produced, can carry part of that value (a JSON Schema path
holds the keys the model generated; a size is a size). ``disclose`` splits
such an error into:

- a fixed public error (same class family, so the same gRPC code; a fixed
  reason; no data) that every caller of every RPC sees, and
- the full error for the parties entitled to the value: the input's owner,
  or the output's recipients (an internal output has none). It reaches them
  sealed (``tcme.wire.failure``).

Errors that depend on no party's secret (timeouts, aborts, a ciphertext that
does not open or is not signed by the party, enclave shutdown) stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestation.errors import TcmeError
from enclave.inference import OutputInvalid
from tcme.contract.errors import InputError
from tcme.contract.model import Contract
from tcme.wire.envelope import SignedInputError
from tcme.wire.failure import FailureRecord

INPUT_INVALID = "input.invalid"
OUTPUT_INVALID = "output.invalid"
INFERENCE_FAILED = "inference.failed"


class FailedRun(TcmeError):
    """The public face of a run that produced no output (mapped to INTERNAL)."""


@dataclass(frozen=True)
class Disclosure:
    """What everyone sees (``public``) and who else may read ``private`` (``entitled``)."""

    public: TcmeError
    private: TcmeError
    entitled: tuple[str, ...]


def disclose(error: TcmeError, contract: Contract, *, from_run: bool = False) -> Disclosure:
    """Split ``error`` for a session of ``contract``; ``from_run``: raised by the model run."""
    if isinstance(error, SignedInputError):
        public: TcmeError = InputError(
            INPUT_INVALID,
            "a party's signed input breaks the contract; the session ended with no output "
            "(the detail went to that party only, sealed to its key)",
        )
        return Disclosure(public, error, (error.party,))
    if isinstance(error, OutputInvalid):
        recipients = next((o.recipients for o in contract.outputs if o.name == error.output), ())
        public = FailedRun(
            OUTPUT_INVALID,
            "an output broke its contract constraint; no output was released "
            "(the detail went to that output's recipients only, sealed to their keys)",
        )
        return Disclosure(public, error, tuple(recipients))
    if from_run:
        # Anything else the model run raised may depend on every input (a prompt too
        # long for the context): nobody is entitled to all of them.
        public = FailedRun(INFERENCE_FAILED, "the model run failed; no output was released")
        return Disclosure(public, error, ())
    return Disclosure(error, error, ())


def attach_failure(error: TcmeError, record: FailureRecord) -> None:
    """Let ``error`` carry its session's signed failure record to the servicer."""
    error.signed_failure = record


def failure_of(error: BaseException) -> FailureRecord | None:
    """The failure record ``error`` carries (a failed session's public error), or None."""
    record = error.signed_failure if isinstance(error, TcmeError) else None
    return record if isinstance(record, FailureRecord) else None
