"""``tcme evidence verify|show`` on Azure vTPM evidence in the CoCo/Trustee JSON form."""

from __future__ import annotations

import json

import pytest

from tcme.cli import EXIT_OK, EXIT_REJECT, EXIT_USAGE, main

AT = "2026-01-01T00:00:00Z"
VERIFIABLE = [
    "trustee_snp_milan_v3_ev0",
    "trustee_snp_milan_v3_ev1",
    "trustee_snp_milan_v3_ev2_userdata",
    "trustee_snp_genoa_v3",
]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        'accept = ["az-snp-vtpm"]\n[azure]\npcrs = { skip = true }\n'
        "[azure.snp]\nallowed_measurements = { skip = true }\n"
    )
    return path


@pytest.mark.parametrize("name", VERIFIABLE)
def test_verify_accepts_with_nonce(capsys, vectors, policy, name):
    folder = vectors / "azure" / name
    nonce = (folder / "nonce.hex").read_text().strip()
    code, out, _ = run(
        capsys, "evidence", "verify", folder / "evidence.json", "--policy", policy,
        "--nonce", nonce, "--at", AT, "--json",
    )  # fmt: skip
    assert code == EXIT_OK
    summary = json.loads(out)
    assert summary["tee"] == "az-snp-vtpm" and summary["quote"]["extra_data"] == nonce


def test_verify_wrong_nonce_rejects_naming_the_check(capsys, vectors, policy):
    folder = vectors / "azure" / "trustee_snp_genoa_v3"
    code, _, err = run(
        capsys, "evidence", "verify", folder / "evidence.json", "--policy", policy,
        "--nonce", "6368616c6c656e6765", "--at", AT,
    )  # fmt: skip
    assert code == EXIT_REJECT
    assert "azure.quote.nonce" in err


def test_verify_without_policy_checks_authenticity_only_and_says_so(capsys, vectors):
    folder = vectors / "azure" / "trustee_snp_genoa_v3"
    code, out, _ = run(capsys, "evidence", "verify", folder / "evidence.json", "--at", AT)
    assert code == EXIT_OK
    assert out.splitlines()[-1].startswith("NOTE: no policy given: authenticity only")


def test_verify_with_a_policy_that_does_not_accept_azure_rejects(capsys, vectors, tmp_path):
    folder = vectors / "azure" / "trustee_snp_genoa_v3"
    snp_only = tmp_path / "snp.toml"
    snp_only.write_text('accept = ["sev-snp"]\n[snp]\nallowed_measurements = { skip = true }\n')
    code, _, err = run(
        capsys, "evidence", "verify", folder / "evidence.json", "--policy", snp_only, "--at", AT
    )
    assert code == EXIT_REJECT and "tee.accept" in err


def test_tampered_hcl_in_evidence_rejects(capsys, vectors, policy, tmp_path):
    folder = vectors / "azure" / "trustee_snp_milan_v3_ev1"
    doc = json.loads((folder / "evidence.json").read_text())
    # One character of the base64url HCL report inside the runtime data region.
    text = doc["hcl_report"]
    i = 0x6E0 * 4 // 3
    doc["hcl_report"] = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(doc))
    nonce = (folder / "nonce.hex").read_text().strip()
    code, _, err = run(
        capsys, "evidence", "verify", path, "--policy", policy, "--nonce", nonce, "--at", AT
    )
    assert code in (EXIT_REJECT, EXIT_USAGE)
    assert "azure." in err or "runtime_data" in err


def test_nonce_on_snp_evidence_is_a_usage_error(capsys, vectors, policy):
    report = vectors / "snp" / "azure_genoa_v3" / "report.bin"
    code, _, err = run(capsys, "evidence", "verify", report, "--nonce", "00", "--at", AT)
    assert code == EXIT_USAGE and "nonce" in err


def test_malformed_azure_json_is_a_usage_error(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"version": 1, "hcl_report": "!!", "tpm_quote": {}}')
    code, _, err = run(capsys, "evidence", "verify", path)
    assert code == EXIT_USAGE and "azure.evidence" in err


def test_show_prints_every_part(capsys, vectors):
    folder = vectors / "azure" / "trustee_snp_milan_v3_ev2_userdata"
    code, out, _ = run(capsys, "evidence", "show", folder / "evidence.json", "--json")
    assert code == EXIT_OK
    fields = json.loads(out)
    assert fields["tee"] == "az-snp-vtpm"
    assert set(fields) >= {
        "hcl_report", "snp_report", "runtime_data", "quote", "quote_signature", "pcrs", "vcek",
    }  # fmt: skip
    assert fields["runtime_data"]["user_data"].startswith(
        (folder / "nonce.hex").read_text().strip()
    )
    assert fields["snp_report"]["vmpl"] == 0


def test_show_tdx_prints_the_td_quote(capsys, vectors):
    folder = vectors / "azure" / "trustee_tdx_v4"
    code, out, _ = run(capsys, "evidence", "show", folder / "evidence_v1.json", "--json")
    assert code == EXIT_OK
    fields = json.loads(out)
    assert fields["tee"] == "az-tdx-vtpm" and "td_quote" in fields
