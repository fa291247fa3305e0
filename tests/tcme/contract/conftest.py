"""Contract-language fixtures: party keys and a small valid ``general`` contract to mutate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tcme.wire import PartyKeys

NAMES = ("alice", "bob", "carol")


@pytest.fixture(scope="session")
def keys() -> dict[str, PartyKeys]:
    return {name: PartyKeys.generate() for name in NAMES}


def base_contract(keys: dict[str, PartyKeys]) -> dict[str, Any]:
    """Alice's secret, Bob's number; a verdict to both and a reason to Alice only."""
    return {
        "type": "tcme/v1/contract",
        "kind": "general",
        "parties": [keys[n].public_entry(n) for n in NAMES],
        "inputs": [
            {
                "party": "alice",
                "name": "secret",
                "type": "string",
                "max_len": 40,
                "max_bytes": 40,
                "pattern": "[a-z ]*",
            },
            {
                "party": "bob",
                "name": "limit",
                "type": "integer",
                "min": 0,
                "max": 100,
                "may_flow_to": ["alice"],
            },
        ],
        "decoding": {"temperature": 0, "seed": 1, "max_tokens": 6},
        "outputs": [
            {
                "name": "verdict",
                "type": "enum",
                "values": ["yes", "no"],
                "prompt": "Is '{secret}' longer than {limit} letters?",
                "recipients": ["alice", "bob"],
                "declassify": {"secret": ["bob"]},
            },
            {
                "name": "reason",
                "type": "grammar",
                "grammar": "root ::= [a-z ]{1,30}",
                "max_chars": 30,
                "prompt": "Why is the answer {verdict} for '{secret}'?",
                "recipients": ["alice"],
            },
        ],
    }


@pytest.fixture
def contract_dict(keys) -> dict[str, Any]:
    return copy.deepcopy(base_contract(keys))
