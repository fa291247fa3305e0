"""What a contract check raises. Errors never quote a party's input or output value."""

from __future__ import annotations

from attestation.errors import TcmeError


class ContractError(TcmeError):
    """The contract is malformed or uses something this version does not support."""


class InputError(TcmeError):
    """A party input does not satisfy the contract (the value itself is never quoted)."""


class OutputValueError(TcmeError):
    """An output value breaks the contract's output constraint (the value is never quoted)."""
