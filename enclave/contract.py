"""Which contracts this enclave accepts.

The contract language itself (parsing, canonical bytes, per-kind validation)
lives in ``tcme.wire.contract`` so parties run the very same checks before they
agree. This module adds what only the enclave decides: resource limits of the
loaded model (token budget, prompt size) and how long a session may wait.
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
    return contract
