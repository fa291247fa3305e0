"""``--json`` on every command that reports: one JSON document on stdout, success or failure."""

from __future__ import annotations

import argparse
import json

import pytest

from tcme.cli import EXIT_OK, EXIT_USAGE, build_parser, main

# Commands that report nothing a script would parse: servers, and the schema (always JSON).
NOT_REPORTING = {"host serve", "enclave serve", "contract schema"}


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = ""):
    """(name, parser) of every runnable command."""
    subs = [
        a
        for a in parser._actions  # argparse has no public accessor
        if isinstance(a, argparse._SubParsersAction)
    ]
    if not subs:
        yield prefix.strip(), parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaf_commands(sub, f"{prefix} {name}")


def test_every_reporting_command_has_json():
    missing = [
        name
        for name, parser in leaf_commands(build_parser())
        if name not in NOT_REPORTING
        and not any("--json" in a.option_strings for a in parser._actions)
    ]
    assert missing == []


def run_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_offline_commands_report_json(capsys, tmp_path):
    code, body, _ = run_json(capsys, "model", "keygen", "--out", tmp_path / "keys")
    assert code == EXIT_OK and body["fingerprint"].startswith("sha256:")
    model = tmp_path / "weights.bin"
    model.write_bytes(b"weights")
    signature = tmp_path / "weights.sig"
    code, body, _ = run_json(
        capsys, "model", "sign", model, "--key", body["private_key"], "--signature", signature,
        "--quiet",
    )  # fmt: skip
    assert code == EXIT_OK and body == {
        "signed": True,
        "model": str(model),
        "signature": str(signature),
    }
    code, body, _ = run_json(
        capsys, "session", "keygen", "--out", tmp_path / "alice.key", "--name", "alice"
    )
    assert code == EXIT_OK and body["public"].endswith("alice.key.pub.json")
    code, body, _ = run_json(capsys, "sim", "snp", "--out", tmp_path / "sim")
    assert code == EXIT_OK and body["simulated"] is True
    assert body["simulated_ark_sha256"].startswith("sha256:")
    code, body, _ = run_json(capsys, "measure", "tdx")
    assert code == EXIT_OK and "MRTD" in body["guidance"]


@pytest.mark.parametrize(
    "argv",
    [
        ["model", "keygen", "--out", "{tmp}/keys"],  # second time: refuses to overwrite
        ["session", "keygen", "--out", "{tmp}/keys/signing-key.pem", "--name", "x"],  # exists
        ["session", "contract", "--template", "{tmp}/nope.json", "--out", "{tmp}/c.json"],
        ["sim", "snp", "--out", "{tmp}/sim", "--report-data", "zz"],
        ["measure", "tdx", "--from-quote", "{tmp}/nope.bin"],
    ],
)
def test_failures_report_json_too(capsys, tmp_path, argv):
    main(["model", "keygen", "--out", str(tmp_path / "keys")])
    capsys.readouterr()
    code, body, err = run_json(capsys, *(part.format(tmp=tmp_path) for part in argv))
    assert code == EXIT_USAGE and err == ""
    assert body["verdict"] == "ERROR" and body["exit_code"] == EXIT_USAGE and body["check"]
    assert None not in body.values()
