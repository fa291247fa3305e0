"""Capability checks: agreed public test cases the enclave runs before it takes inputs.

A ``general`` contract may carry ``capability_tests`` (public inputs and the
expected value of some outputs) and ``min_score_percent``. At CreateSession
the enclave runs every test on the loaded model, exactly as a real session
would run, and writes the outcome into a *capability record*::

    {"type": "tcme/v1/capability", "session_id": hex, "contract_digest": hex,
     "claims_digest": hex, "passed": k, "total": n,
     "results": [{"passed": bool, "outputs": {name: value}} |
                 {"passed": false, "error": check}, ...]}

The record's SHA-256 is bound into the session's evidence (REPORT_DATA gets a
sixth field, attestation.binding) and repeated in the receipt, so the score a
party reads is the score the attested enclave measured, for this session and
contract. Below the contract's ``min_score_percent`` the enclave refuses the
session (``capability.score``); a party's own policy may ask for more
(``[contract] min_capability_score = 0.8``, ``check_capability``).

Test inputs and their outputs are public by construction: the record holds no
party data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from attestation.errors import BindingError, ParseError, PolicyError, TcmeError
from tcme.base.encoding import (
    canonical_json,
    json_type,
    parse_canonical_json,
    require_keys,
    sha256,
    unhex,
)
from tcme.contract.errors import ContractError, OutputValueError
from tcme.contract.fields import as_list, fields
from tcme.contract.model import Contract, InputSpec, OutputSpec

log = logging.getLogger(__name__)

CAPABILITY_TYPE = "tcme/v1/capability"
MAX_TESTS = 32
# Bound on what the record can hold: tests x max characters of the checked outputs
# (x4 bytes per character in UTF-8 stays under the 256 KiB canonical-JSON limit).
MAX_RECORD_CHARS = 32768
ENUM_MAX_CHARS = 64


# The total tokens (prompt and generated, every turn of every test) a contract's tests
# may use; the contract states its own budget (``capability_token_budget``) up to this.
MAX_TOKEN_BUDGET = 8192


class CapabilityError(ContractError):
    """The loaded model scored below the contract's minimum; the session is refused."""


class TokenBudgetError(CapabilityError):
    """The capability tests used up the contract's token budget; the session is refused."""


class TokenBudget:
    """What the running capability tests may still spend, in tokens (prompt + generated).

    The model runner asks ``grant`` before each call (the call's ``max_tokens``
    shrinks to what is left) and reports the call's usage to ``charge``. The
    run stops with ``capability.budget`` when the budget is spent with work
    left, or when the budget, not the turn's own ``max_tokens``, cut a call
    short. A call can overshoot by its prompt alone, which the context size bounds.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def grant(self, max_tokens: int) -> int:
        """Tokens the next call may generate; raises ``TokenBudgetError`` when none are left."""
        remaining = self.limit - self.spent
        if remaining <= 0:
            raise self._exceeded()
        return min(max_tokens, remaining)

    def charge(
        self, prompt_tokens: int, completion_tokens: int, *, granted: int, wanted: int
    ) -> None:
        """Count one call's usage; raises ``TokenBudgetError`` when it broke the budget."""
        self.spent += prompt_tokens + completion_tokens
        if self.spent > self.limit or (granted < wanted and completion_tokens >= granted):
            raise self._exceeded()

    def _exceeded(self) -> TokenBudgetError:
        return TokenBudgetError(
            "capability.budget",
            "the capability tests need more tokens than the contract's "
            "capability_token_budget; session refused",
            expected=f"<= {self.limit} tokens",
            actual=f"{self.spent} spent with tests left to run",
        )


_RUNNING_BUDGET: ContextVar[TokenBudget | None] = ContextVar("capability_budget", default=None)


def running_budget() -> TokenBudget | None:
    """The budget of the capability tests running on this thread, or None (a real session)."""
    return _RUNNING_BUDGET.get()


@dataclass(frozen=True)
class CapabilityTest:
    """One agreed test: a value for every input, the expected value of some outputs."""

    inputs: Mapping[str, Any]
    expected: Mapping[str, str]


@dataclass(frozen=True)
class CaseOutcome:
    """How one test went: the checked outputs it produced, or the check that failed."""

    passed: bool
    outputs: Mapping[str, str]
    error: str | None = None


@dataclass(frozen=True)
class CapabilityRecord:
    """A parsed capability record; ``raw`` is what is bound, ``digest`` = SHA-256(raw)."""

    raw: bytes
    digest: bytes
    session_id: bytes
    contract_digest: bytes
    claims_digest: bytes
    passed: int
    total: int
    results: tuple[CaseOutcome, ...]

    @property
    def score(self) -> float:
        """Fraction of tests passed (0.0 when there are none)."""
        return self.passed / self.total if self.total else 0.0

    def meets(self, min_percent: int) -> bool:
        """``passed / total >= min_percent / 100``, in exact integer arithmetic."""
        return self.passed * 100 >= min_percent * self.total

    def summary(self) -> dict[str, Any]:
        """The receipt's ``capability`` entry."""
        return {"digest": self.digest.hex(), "passed": self.passed, "total": self.total}


# --- contract side -------------------------------------------------------------------------


def _max_chars(spec: OutputSpec) -> int:
    limit = getattr(spec.constraint, "max_chars", None)
    return int(limit) if limit is not None else ENUM_MAX_CHARS


def parse_tests(
    value: Any, inputs: Sequence[InputSpec], outputs: Sequence[OutputSpec]
) -> tuple[CapabilityTest, ...]:
    """Parse ``capability_tests``; every input value and expected output is checked."""
    where = "contract.capability_tests"
    items = as_list(value, where, 1, MAX_TESTS)
    by_output = {o.name: o for o in outputs}
    tests: list[CapabilityTest] = []
    size = 0
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        fields(item, here, {"inputs", "expected"})
        given = item["inputs"]
        if not isinstance(given, dict) or set(given) != {s.name for s in inputs}:
            raise ContractError(
                f"{here}.inputs",
                "a test gives a value for every input",
                expected=", ".join(sorted(s.name for s in inputs)),
                actual=", ".join(sorted(given)) or "none"
                if isinstance(given, dict)
                else json_type(given),
            )
        for spec in inputs:
            try:
                spec.check(given[spec.name])
            except TcmeError as err:
                # Test inputs are public, so the value may be named.
                raise ContractError(
                    f"{here}.inputs.{spec.name}",
                    f"test input breaks its own constraint: {err.detail}",
                ) from err
        expected = item["expected"]
        if not isinstance(expected, dict) or not expected:
            raise ContractError(f"{here}.expected", "name at least one output and its value")
        normalized: dict[str, str] = {}
        for name, want in expected.items():
            output = by_output.get(name)
            if output is None:
                raise ContractError(f"{here}.expected", "names no output", actual=name)
            text = want if isinstance(want, str) or output.type != "json" else json.dumps(want)
            if not isinstance(text, str) or not output.accepts(_normal(output, text)):
                raise ContractError(
                    f"{here}.expected.{name}", "not a value this output can take", actual=want
                )
            normalized[name] = _normal(output, text)
            size += _max_chars(output)
        tests.append(CapabilityTest(inputs=dict(given), expected=normalized))
    if size > MAX_RECORD_CHARS:
        raise ContractError(
            where,
            "tests check too much output text",
            expected=f"<= {MAX_RECORD_CHARS}",
            actual=size,
        )
    return tuple(tests)


def _normal(spec: OutputSpec, text: str) -> str:
    try:
        return spec.normalize(text)
    except OutputValueError:
        return text


# --- enclave side ---------------------------------------------------------------------------

Runner = Callable[[Contract, Mapping[str, Any]], Mapping[str, str]]


def run_tests(contract: Contract, runner: Runner) -> list[CaseOutcome]:
    """Run every test through ``runner`` (the session's own model call).

    A test whose run fails a tcme check (an unfinished output, an off-contract
    value) counts as failed with that check; any other exception propagates,
    ``TokenBudgetError`` included: the runner draws on ``running_budget()``,
    the contract's ``capability_token_budget``, and the run stops when it is spent.
    """
    outcomes: list[CaseOutcome] = []
    running = _RUNNING_BUDGET.set(TokenBudget(contract.capability_token_budget))
    try:
        for test in contract.capability_tests:
            try:
                produced = dict(runner(contract, test.inputs))
            except TokenBudgetError:
                raise
            except TcmeError as err:
                outcomes.append(CaseOutcome(passed=False, outputs={}, error=err.check))
                continue
            checked = {name: produced.get(name, "") for name in test.expected}
            passed = all(checked[name] == want for name, want in test.expected.items())
            outcomes.append(CaseOutcome(passed=passed, outputs=checked))
    finally:
        _RUNNING_BUDGET.reset(running)
    return outcomes


def build_record(
    *,
    session_id: bytes,
    contract_digest: bytes,
    claims_digest: bytes,
    outcomes: Sequence[CaseOutcome],
) -> bytes:
    """Canonical capability record bytes."""
    results: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"passed": outcome.passed}
        if outcome.error is not None:
            entry["error"] = outcome.error
        else:
            entry["outputs"] = dict(outcome.outputs)
        results.append(entry)
    return canonical_json(
        {
            "type": CAPABILITY_TYPE,
            "session_id": session_id.hex(),
            "contract_digest": contract_digest.hex(),
            "claims_digest": claims_digest.hex(),
            "passed": sum(1 for o in outcomes if o.passed),
            "total": len(outcomes),
            "results": results,
        }
    )


def parse_record(raw: bytes) -> CapabilityRecord:
    """Parse canonical record bytes; raises ``ParseError``."""
    obj = require_keys(
        parse_canonical_json(raw, "capability"),
        "capability",
        {"type", "session_id", "contract_digest", "claims_digest", "passed", "total", "results"},
    )
    if obj["type"] != CAPABILITY_TYPE:
        raise ParseError("capability.type", expected=CAPABILITY_TYPE, actual=obj["type"])
    results_raw = obj["results"]
    if not isinstance(results_raw, list):
        raise ParseError("capability.results", "expected a list")
    results: list[CaseOutcome] = []
    for item in results_raw:
        entry = require_keys(item, "capability.results", {"passed"}, {"outputs", "error"})
        if not isinstance(entry["passed"], bool):
            raise ParseError("capability.results.passed", "expected a boolean")
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
            raise ParseError("capability.results.outputs", "expected {name: text}")
        error = entry.get("error")
        if error is not None and not isinstance(error, str):
            raise ParseError("capability.results.error", "expected a string")
        results.append(CaseOutcome(passed=entry["passed"], outputs=outputs, error=error))
    passed, total = obj["passed"], obj["total"]
    if total != len(results) or passed != sum(1 for r in results if r.passed):
        raise ParseError(
            "capability.score",
            "passed/total disagree with the results",
            expected=f"{sum(1 for r in results if r.passed)}/{len(results)}",
            actual=f"{passed}/{total}",
        )
    return CapabilityRecord(
        raw=bytes(raw),
        digest=sha256(raw),
        session_id=unhex(obj["session_id"], "capability.session_id"),
        contract_digest=unhex(obj["contract_digest"], "capability.contract_digest", size=32),
        claims_digest=unhex(obj["claims_digest"], "capability.claims_digest", size=32),
        passed=passed,
        total=total,
        results=tuple(results),
    )


# --- party side -----------------------------------------------------------------------------


def session_capability(
    raw: bytes, *, claims_digest: bytes, contract: Contract | None, session_id: bytes
) -> CapabilityRecord | None:
    """The capability record an Attest response carries, checked against this session.

    Returns None when the contract has no capability tests (and then the
    response must carry no record). Otherwise the record must be present, be
    for this session, contract and claims, and have one result per test.
    Its digest then goes into REPORT_DATA (``attestation.binding``), so the
    evidence check fails if the host altered it. Raises ``BindingError`` or
    ``ParseError``.
    """
    wants = contract is not None and bool(contract.capability_tests)
    if not wants:
        if raw:
            raise BindingError(
                "capability.unexpected",
                "a capability record came with a contract that has no tests",
            )
        return None
    assert contract is not None
    if not raw:
        raise BindingError(
            "capability.missing", "the contract has capability tests but no record came back"
        )
    record = parse_record(raw)
    for check, want, got in (
        ("capability.session_id", session_id, record.session_id),
        ("capability.contract_digest", contract.digest, record.contract_digest),
        ("capability.claims_digest", claims_digest, record.claims_digest),
    ):
        if want != got:
            raise BindingError(check, expected=want, actual=got)
    if record.total != len(contract.capability_tests):
        raise BindingError(
            "capability.total", expected=len(contract.capability_tests), actual=record.total
        )
    # The enclave is attested, but its verdicts cost nothing to recheck: each result
    # that carries outputs must pass exactly when they equal the contract's expectations.
    for index, (test, result) in enumerate(
        zip(contract.capability_tests, record.results, strict=True)
    ):
        if result.error is not None:
            if result.passed:
                raise BindingError(f"capability.results[{index}]", "a failed run cannot pass")
            continue
        agrees = all(result.outputs.get(name) == want for name, want in test.expected.items())
        if agrees != result.passed or set(result.outputs) != set(test.expected):
            raise BindingError(
                f"capability.results[{index}]",
                "the verdict does not follow from the outputs and the contract's expectations",
                expected=agrees,
                actual=result.passed,
            )
    return record


def check_capability(minimum: float | None, record: CapabilityRecord | None) -> None:
    """Refuse to submit when the policy's minimum score is not met.

    ``minimum``: the party policy's ``[contract] min_capability_score`` (0..1, typed
    by ``tcme.client.policy``), None when unset. With a minimum set, a session
    without capability tests is refused too: the party asked for a measured score
    and there is none. Raises ``PolicyError``.
    """
    if minimum is None:
        return
    if record is None:
        raise PolicyError(
            "capability.missing",
            "the policy sets min_capability_score but the contract has no capability tests",
            expected=f">= {minimum:g}",
            actual="no score",
        )
    if record.total == 0 or record.passed < minimum * record.total - 1e-9:
        raise PolicyError(
            "capability.score",
            "the model scored below this party's minimum on the contract's tests",
            expected=f">= {minimum:g}",
            actual=f"{record.passed}/{record.total} = {record.score:.3g}",
        )
    log.info(
        "capability score %d/%d meets the policy minimum %g", record.passed, record.total, minimum
    )
