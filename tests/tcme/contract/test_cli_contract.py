"""``tcme contract check``: valid files print the digest; leaks and bad files get exit 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tcme.cli import main
from tcme.contract import load_contract

REPO = Path(__file__).resolve().parents[3]


def test_check_prints_the_digest_of_a_filled_contract(tmp_path, keys, capsys):
    for name in ("reporter", "insurer"):
        (tmp_path / f"{name}.pub.json").write_text(
            json.dumps(keys["alice" if name == "reporter" else "bob"].public_entry(name))
        )
    example = REPO / "examples" / "damage-monitoring"
    code = main(
        [
            "contract",
            "check",
            str(example),
            "--party-key",
            f"reporter={tmp_path / 'reporter.pub.json'}",
            "--party-key",
            f"insurer={tmp_path / 'insurer.pub.json'}",
            "--json",
            "--canonical-out",
            str(tmp_path / "canonical.json"),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    expected = load_contract(
        example, keys={"reporter": keys["alice"], "insurer": keys["bob"]}
    ).digest.hex()
    assert report["digest"] == expected
    assert (tmp_path / "canonical.json").read_bytes() == load_contract(
        example, keys={"reporter": keys["alice"], "insurer": keys["bob"]}
    ).raw
    assert {
        "output": "damaged",
        "recipient": "insurer",
        "source": "reporter.description",
        "ground": "declassify",
    } in report["flows"]


def test_check_of_a_template_says_it_has_no_digest(capsys):
    assert main(["contract", "check", str(REPO / "examples" / "graph-colouring")]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "none yet: template" in out
    assert "validity -> verifier: prover.colouring (declassify), verifier.edges (owner)" in out


def test_leaking_contract_exits_1_naming_the_flow(tmp_path, capsys):
    text = (REPO / "examples" / "damage-monitoring" / "contract.toml").read_text()
    leaking = (
        text.replace('recipients = ["insurer"]', 'recipients = ["insurer", "reporter"]').replace(
            'declassify = { description = ["insurer"] }',
            'declassify = { insured_item = ["reporter"] }',
        )
        + '\n[[parties]]\nname = "carol"\n'
    )
    leaking = leaking.replace(
        'recipients = ["insurer", "reporter"]', 'recipients = ["insurer", "reporter", "carol"]'
    )
    path = tmp_path / "contract.toml"
    path.write_text(leaking)
    assert main(["contract", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "rejected: contract.flow:" in err
    assert "output 'damaged' derived from reporter.description may not reach insurer" in err
    assert "output 'damaged' derived from insurer.insured_item may not reach carol" in err


def test_unreadable_file_exits_2(tmp_path, capsys):
    assert main(["contract", "check", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["contract", "schema"]])
def test_schema_command_prints_the_schema(args):
    result = subprocess.run(
        [sys.executable, "-m", "tcme", *args], capture_output=True, text=True, check=True
    )
    schema = json.loads(result.stdout)
    assert schema["$id"].endswith("contract-file.json")


def test_every_schema_violation_is_listed_and_json_reports_the_rejection(tmp_path, capsys):
    text = (REPO / "examples" / "damage-monitoring" / "contract.toml").read_text()
    broken = "unknown_one = 1\n" + text.replace("max_len = 400", 'max_len = "four hundred"')
    path = tmp_path / "contract.toml"
    path.write_text(broken)
    code = main(["contract", "check", str(path)])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if "contract.schema" in x]
    assert code == 2, err
    assert len(lines) == 2, err
    assert "unknown_one" in err and "four hundred" in err
    assert "None" not in err

    code = main(["contract", "check", str(path), "--json"])
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert code == 2 and err == ""
    assert body["verdict"] == "ERROR" and body["check"] == "contract.schema"
    assert len(body["reasons"]) == 2
