"""Which contracts this enclave accepts.

The contract language itself (parsing, canonical bytes, per-kind validation)
lives in ``tcme.wire.contract`` so parties run the very same checks before they
agree. This module adds what only the enclave decides: resource limits of the
loaded model (token budget, prompt size, for every model turn of a ``general``
contract) and how long a session may wait. The information-flow check runs
inside ``parse_contract`` itself, so the enclave refuses a leaking contract at
CreateSession exactly as ``tcme contract check`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcme.wire.contract import Contract, ContractError, parse_contract


@dataclass(frozen=True)
class ContractLimits:
    """Enclave-side limits; a contract above any of them is refused, never truncated."""

    max_timeout_seconds: int = 3600
    max_tokens: int = 512
    max_prompt_chars: int = 16384


def accept_contract(raw: bytes, limits: ContractLimits | None = None) -> Contract:
    """Parse canonical contract bytes and check them against this enclave's limits.

    Raises ``ContractError`` / ``ParseError`` naming the field.
    """
    limits = limits or ContractLimits()
    contract = parse_contract(raw)
    if contract.timeout_seconds > limits.max_timeout_seconds:
        raise ContractError(
            "contract.timeout_seconds",
            "longer than this enclave allows",
            expected=f"<= {limits.max_timeout_seconds}",
            actual=contract.timeout_seconds,
        )
    if contract.decoding.max_tokens > limits.max_tokens:
        raise ContractError(
            "contract.decoding.max_tokens",
            "larger than this enclave allows",
            expected=f"<= {limits.max_tokens}",
            actual=contract.decoding.max_tokens,
        )
    if len(contract.prompt) > limits.max_prompt_chars:
        raise ContractError(
            "contract.prompt",
            "longer than this enclave allows",
            expected=f"<= {limits.max_prompt_chars} characters",
            actual=len(contract.prompt),
        )
    # Kind "general": every model turn has its own prompt and token budget.
    for index, output in enumerate(contract.outputs):
        if output.turn is None:
            continue
        if output.turn.max_tokens > limits.max_tokens:
            raise ContractError(
                f"contract.outputs[{index}].max_tokens",
                "larger than this enclave allows",
                expected=f"<= {limits.max_tokens}",
                actual=output.turn.max_tokens,
            )
        if len(output.turn.prompt) > limits.max_prompt_chars:
            raise ContractError(
                f"contract.outputs[{index}].prompt",
                "longer than this enclave allows",
                expected=f"<= {limits.max_prompt_chars} characters",
                actual=len(output.turn.prompt),
            )
    return contract
