"""Every example folder has the layout docs/contracts.md ("Examples") describes, and only it.

``examples/NAME/`` holds ``contract.toml`` (a template: parties by name, no keys),
``inputs.toml`` (one table per party, values the contract accepts) and
``cases.py`` (``cases(rng, count)``: generated cases of known answer whose
inputs the contract accepts and whose expected outputs it allows). A new
example is picked up by the folder listing, so it cannot drift from the others.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tcme.contract import load_contract
from tcme.contract.example import load_cases, read_inputs

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.is_dir())
LAYOUT = {"contract.toml", "inputs.toml", "cases.py"}
# Left behind by Python or editors, never part of an example.
IGNORED = {"__pycache__", ".DS_Store"}


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {
        "millionaires",
        "damage-monitoring",
        "code-audit",
        "research-noncompete",
        "graph-colouring",
    }


def test_the_docs_describe_the_layout_and_list_every_example():
    doc = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = doc.split("## Examples", 1)[1].split("\n## ", 1)[0]
    for name in LAYOUT:
        assert name in section, f"docs/contracts.md Examples does not name {name}"
    assert "contract.template" not in section
    for example in EXAMPLES:
        assert f"| `{example.name}` |" in section, f"{example.name} missing from the table"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_has_exactly_the_documented_files(example):
    files = {p.name for p in example.iterdir()} - IGNORED
    assert files == LAYOUT, f"{example.name}: extra {files - LAYOUT}, missing {LAYOUT - files}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_contract_is_a_template_and_inputs_fit_it(example):
    loaded = load_contract(example)  # the directory: the loader finds contract.toml
    assert loaded.path.name == "contract.toml"
    contract = loaded.contract
    names = [p.name for p in contract.parties]
    # A template: no party has keys yet (each run or party flow fills in fresh ones).
    assert sorted(loaded.missing_keys) == sorted(names)
    inputs = read_inputs(example / "inputs.toml", contract)
    assert set(inputs) == set(names)
    for party in names:
        contract.check_values(party, inputs[party])  # raises on a value the contract refuses


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_generated_cases_fit_the_contract(example):
    contract = load_contract(example).contract
    cases = load_cases(example)
    assert cases is not None, f"{example.name}/cases.py defines no cases(rng, count)"
    generated = cases(random.Random(7), 3)
    assert len(generated) == 3
    for values, expected in generated:
        assert set(values) == {p.name for p in contract.parties}
        for party, given in values.items():
            contract.check_values(party, given)
        for name, answer in expected.items():
            assert contract.output(name).accepts(answer), (name, answer)
