"""Ready-made contracts for tests (as dicts, before canonicalisation).

``millionaires_contract``: Yao's millionaires problem for two parties. Each
party's wealth is an integer input; the one output says who is richer
("first", "second" or "equal") and goes to both. ``example_template(NAME)``:
the contract of ``examples/NAME`` as a dict.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcme.base.keys import PartyKeys

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_contract_path(name: str) -> Path:
    """``examples/NAME/contract.toml``: every example's contract file (docs/contracts.md)."""
    return EXAMPLES / name / "contract.toml"


def example_template(name: str) -> dict[str, Any]:
    """The contract template of ``examples/NAME`` as a dict (parties by name, no keys)."""
    return tomllib.loads(example_contract_path(name).read_text(encoding="utf-8"))


MILLIONAIRES_PROMPT = (
    "Two people compare their wealth. The first person has {first_wealth} dollars. "
    "The second person has {second_wealth} dollars. Which person has more money? "
    'Answer "first" if the first person has more, "second" if the second person has '
    'more, or "equal" if they have the same amount.'
)


def millionaires_contract(
    first: tuple[str, PartyKeys | Mapping[str, Any]],
    second: tuple[str, PartyKeys | Mapping[str, Any]],
    *,
    max_wealth: int = 1_000_000_000,
    seed: int = 42,
    max_tokens: int = 4,
    timeout_seconds: int = 120,
) -> dict[str, Any]:
    """The millionaires contract for two ``(name, keys)`` parties.

    ``keys`` is a ``PartyKeys`` (its public half is used) or an already public
    ``parties[]`` entry (``{"name", "signing_key", "hpke_key"}``).
    """
    entries = []
    for name, keys in (first, second):
        entry = keys.public_entry(name) if isinstance(keys, PartyKeys) else dict(keys)
        entry["name"] = name
        entries.append(entry)
    return {
        "type": "tcme/v1/contract",
        "kind": "enum-decision",
        "parties": entries,
        "inputs": [
            {
                "party": first[0],
                "name": "first_wealth",
                "type": "integer",
                "min": 0,
                "max": max_wealth,
            },
            {
                "party": second[0],
                "name": "second_wealth",
                "type": "integer",
                "min": 0,
                "max": max_wealth,
            },
        ],
        "prompt": MILLIONAIRES_PROMPT,
        "decoding": {"temperature": 0, "seed": seed, "max_tokens": max_tokens},
        "outputs": [
            {
                "name": "richer",
                "type": "enum",
                "values": ["first", "second", "equal"],
                "recipients": [first[0], second[0]],
            }
        ],
        "timeout_seconds": timeout_seconds,
    }


def fill_template(
    template: Mapping[str, Any], keys: Mapping[str, PartyKeys | Mapping[str, Any]]
) -> bytes:
    """Canonical bytes of contract dict ``template`` with each party's public keys filled in.

    A test shortcut for in-memory dicts; files go through ``tcme.contract.load_contract``.
    """
    from tcme.contract import canonical_contract

    body = dict(template)
    parties = []
    for entry in template["parties"]:
        name = entry["name"]
        given = keys[name]
        public = given.public_entry(name) if isinstance(given, PartyKeys) else dict(given)
        public["name"] = name
        parties.append(public)
    body["parties"] = parties
    return canonical_contract(body)
