"""A party policy written by following the docs literally loads (issue 11: "a party policy
written by following the docs literally works"): every TOML example of a whole policy in
docs/security.md and docs/usage.md, with its placeholders filled in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcme.client import PartyPolicy
from tcme.wire import PartyKeys
from tests.contracts import example_template, fill_template

REPO = Path(__file__).resolve().parents[3]
PLACEHOLDERS = {"<96 hex>": "ab" * 48, "<64 hex>": "cd" * 32}


def _policy_blocks(doc: str) -> list[str]:
    text = (REPO / "docs" / doc).read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if "[model]" in b and "accept" in b]


@pytest.mark.parametrize("doc", ["security.md", "usage.md"])
def test_documented_policy_loads(doc, tmp_path):
    blocks = _policy_blocks(doc)
    assert blocks, f"docs/{doc} shows no whole party policy"
    template = example_template("millionaires")
    keys = {n: PartyKeys.generate().public_entry(n) for n in ("alice", "bob")}
    (tmp_path / "contract.json").write_bytes(fill_template(template, keys))
    for block in blocks:
        for placeholder, value in PLACEHOLDERS.items():
            block = block.replace(placeholder, value)
        path = tmp_path / "party.toml"
        path.write_text(block)
        policy = PartyPolicy.load(path)
        assert policy.evidence.accept and policy.contract is not None
        assert policy.skipped() == []  # the documented policy pins, it does not skip
