"""Canonical contract bytes → ``Contract``: the one entry point both sides run.

The enclave parses before it opens a session, each party before it agrees
(and only after the bytes' digest matched the one it pinned). Each kind
registers its parser in ``KINDS``; an unknown kind, type or field is refused,
never ignored. Errors never quote an input value: a party input is secret
even when invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attestation.errors import ParseError
from tcme.base.encoding import (
    canonical_json,
    json_type,
    load_json_text,
    parse_canonical_json,
    sha256,
)
from tcme.contract.enum_decision import parse_enum_decision
from tcme.contract.errors import ContractError
from tcme.contract.general import parse_general
from tcme.contract.model import Contract, ContractKind

CONTRACT_TYPE = "tcme/v1/contract"

# Keyed by ContractKind, a str enum, so the contract's own string looks a parser up.
KINDS: dict[str, Callable[[dict[str, Any], bytes], Contract]] = {
    ContractKind.ENUM_DECISION: parse_enum_decision,
    ContractKind.GENERAL: parse_general,
}


def parse_contract(contract: bytes) -> Contract:
    """Parse and validate canonical contract bytes; raises ``ContractError`` or ``ParseError``."""
    obj = parse_canonical_json(contract, "contract")
    if not isinstance(obj, dict):
        raise ContractError("contract", "expected a JSON object", actual=json_type(obj))
    if obj.get("type") != CONTRACT_TYPE:
        raise ContractError("contract.type", expected=CONTRACT_TYPE, actual=obj.get("type"))
    kind = obj.get("kind")
    parser = KINDS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ContractError(
            "contract.kind",
            "unsupported contract kind",
            expected=" | ".join(KINDS),
            actual=str(kind)[:80],
        )
    return parser(obj, bytes(contract))


def canonical_contract(contract: Mapping[str, Any] | bytes | str) -> bytes:
    """Validate a contract (dict, or JSON text/bytes in any layout) and return canonical bytes."""
    if isinstance(contract, bytes | str):
        try:
            text = contract.decode("utf-8") if isinstance(contract, bytes) else contract
        except UnicodeDecodeError as err:
            raise ContractError("contract.json", "not UTF-8") from err
        try:
            contract = load_json_text(text, "contract")
        except ParseError as err:
            raise ContractError(
                err.check, err.detail, expected=err.expected, actual=err.actual
            ) from err
    try:
        raw = canonical_json(contract)
    except ValueError as err:
        raise ContractError("contract.json", str(err)) from err
    parse_contract(raw)
    return raw


def contract_digest(contract: bytes) -> bytes:
    """SHA-256 of the exact canonical contract bytes."""
    return sha256(contract)
