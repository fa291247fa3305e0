"""Contract files: TOML and JSON, key files inlined, the schema, templates, the examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from attestation.errors import ParseError, UsageError
from tcme.contract import contract_file_schema, load_contract, validate_document
from tcme.contract.errors import ContractError
from tcme.contract.loader import find_contract_file
from tcme.wire import canonical_contract

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/contract*.*"))

TOML = """
type = "tcme/v1/contract"
kind = "general"
title = "toml test"

[[parties]]
name = "alice"
keys = "alice.pub.json"

[[parties]]
name = "bob"
keys = "bob.key"

[[inputs]]
party = "alice"
name = "secret"
type = "string"
max_len = 10

[[inputs]]
party = "bob"
name = "level"
type = "number"
min = "0"
max = "1.5"

[decoding]
temperature = 0
seed = 5
max_tokens = 4

[[outputs]]
name = "answer"
type = "enum"
values = ["up", "down"]
prompt = "{secret} {level}"
recipients = ["alice", "bob"]
declassify = { secret = ["bob"], level = ["alice"] }
"""


def _write_keys(directory: Path, keys) -> None:
    (directory / "alice.pub.json").write_text(json.dumps(keys["alice"].public_entry("alice")))
    keys["bob"].save(directory / "bob.key")


def test_toml_with_key_files_gives_the_canonical_contract(tmp_path, keys):
    _write_keys(tmp_path, keys)
    (tmp_path / "contract.toml").write_text(TOML)
    loaded = load_contract(tmp_path)
    assert loaded.path == tmp_path / "contract.toml"
    assert loaded.missing_keys == ()
    parties = loaded.document["parties"]
    assert parties[0] == keys["alice"].public_entry("alice")
    assert parties[1] == keys["bob"].public_entry("bob")  # private file: public half only
    # The same contract written as JSON with inline keys has the same digest.
    (tmp_path / "same.json").write_text(json.dumps(loaded.document, indent=1))
    assert load_contract(tmp_path / "same.json").digest == loaded.digest
    assert loaded.raw == canonical_contract(loaded.document)


def test_template_is_checked_but_has_no_digest(tmp_path, keys):
    (tmp_path / "contract.toml").write_text(TOML.replace('keys = "alice.pub.json"\n', ""))
    _write_keys(tmp_path, keys)
    loaded = load_contract(tmp_path / "contract.toml")
    assert loaded.missing_keys == ("alice",)
    assert loaded.raw is None and loaded.digest is None
    filled = load_contract(tmp_path / "contract.toml", keys={"alice": keys["alice"]})
    assert filled.digest is not None and filled.missing_keys == ()


@pytest.mark.parametrize(
    ("edit", "error", "check"),
    [
        (
            lambda t: t.replace('keys = "bob.key"', 'keys = "nope.json"'),
            UsageError,
            "contract.keys",
        ),
        (
            lambda t: t.replace('keys = "alice.pub.json"', 'keys = "bob.key"\nsigning_key = "x"'),
            ContractError,
            "contract.schema",
        ),
        # JSON Schema calls 4.0 an integer; canonical JSON still refuses the float.
        (
            lambda t: t.replace("max_tokens = 4", "max_tokens = 4.0"),
            ContractError,
            "contract.json",
        ),
        (lambda t: t.replace('min = "0"', "min = 0"), ContractError, "contract.schema"),
        (
            lambda t: t.replace('prompt = "{secret} {level}"\n', ""),
            ContractError,
            "contract.schema",
        ),
        (lambda t: t + "\nunknown = 1\n", ContractError, "contract.schema"),
        (lambda t: t.replace("[decoding]", "[decoding\n"), ParseError, "contract.toml"),
        (
            lambda t: t.replace('recipients = ["alice", "bob"]', 'recipients = ["alice", "carol"]'),
            ContractError,
            "contract.outputs[0].recipients",
        ),
    ],
)
def test_bad_files_are_refused_fail(tmp_path, keys, edit, error, check):
    _write_keys(tmp_path, keys)
    (tmp_path / "contract.toml").write_text(edit(TOML))
    with pytest.raises(error) as caught:
        load_contract(tmp_path / "contract.toml")
    assert caught.value.check.startswith(check), caught.value.message()


def test_schema_errors_name_the_json_path(tmp_path, keys):
    _write_keys(tmp_path, keys)
    (tmp_path / "contract.toml").write_text(TOML.replace('prompt = "{secret} {level}"\n', ""))
    with pytest.raises(ContractError, match=r"at /outputs/0: 'prompt' is a required property"):
        load_contract(tmp_path / "contract.toml")


def test_duplicate_json_keys_are_refused_fail(tmp_path):
    (tmp_path / "c.json").write_text('{"type": "tcme/v1/contract", "type": "x"}')
    with pytest.raises(ParseError, match="a key appears twice") as err:
        load_contract(tmp_path / "c.json")
    assert err.value.actual == "type"


def test_semantic_errors_come_after_the_schema(tmp_path, keys):
    _write_keys(tmp_path, keys)
    (tmp_path / "contract.toml").write_text(TOML.replace('level = ["alice"]', 'level = ["bob"]'))
    with pytest.raises(ContractError, match=r"declassifies 'level' to non-recipient|may not reach"):
        load_contract(tmp_path / "contract.toml")


def test_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(contract_file_schema())


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_a_valid_template(example):
    loaded = load_contract(example)
    assert loaded.missing_keys == tuple(p.name for p in loaded.contract.parties)
    validate_document(loaded.document)


def test_find_contract_file_fail(tmp_path):
    with pytest.raises(UsageError, match="no contract file"):
        find_contract_file(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        find_contract_file(tmp_path / "missing.toml")
