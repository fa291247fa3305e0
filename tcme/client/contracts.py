"""Reading contract files and filling a template with the parties' public keys.

Contracts travel as canonical JSON (``tcme.wire.canonical_contract``). People
write them as ordinary JSON; this module parses strictly (duplicate keys are an
error, not "last one wins") and canonicalises, so the digest every party
computes from its own file is the one the enclave binds into evidence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attestation.errors import ParseError, UsageError
from tcme.wire import canonical_contract


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ParseError("contract.json", "duplicate key", actual=key)
        seen[key] = value
    return seen


def load_json(path: Path, what: str) -> Any:
    """Strict JSON from ``path``; UsageError when unreadable, ParseError when malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{what}.read", f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ParseError(f"{what}.utf8", f"{path} is not UTF-8") from err
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as err:
        raise ParseError(f"{what}.json", f"{path}: {err}") from err


def load_contract_bytes(path: Path) -> bytes:
    """The canonical bytes of the contract in ``path``; raises ParseError if invalid."""
    data = load_json(path, "contract")
    if not isinstance(data, Mapping):
        raise ParseError("contract.json", f"{path}: a contract is a JSON object")
    return canonical_contract(data)


def fill_contract(template: Mapping[str, Any], parties: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Canonical contract bytes: ``template`` with each ``parties[]`` entry's keys filled in.

    ``template["parties"]`` lists at least the names (``{"name": "alice"}``);
    ``parties`` maps each name to its ``PartyKeys.public_entry(name)``. Every
    party named in the template must be given, and no other.
    """
    entries = template.get("parties")
    if not isinstance(entries, list):
        raise ParseError("contract.parties", "the template needs a parties list")
    names = [e.get("name") if isinstance(e, Mapping) else None for e in entries]
    if sorted(map(str, names)) != sorted(parties):
        raise UsageError(
            "contract.parties",
            "public keys must be given for exactly the template's parties",
            expected=sorted(map(str, names)),
            actual=sorted(parties),
        )
    filled = dict(template)
    filled["parties"] = [dict(parties[str(name)]) for name in names]
    return canonical_contract(filled)
