"""``tcme evidence verify|show`` on Intel TDX quotes: every vector's outcome through the CLI.

Exit codes: 0 accept, 1 reject, 2 malformed input or usage error; one line per reason,
never a traceback.
"""

from __future__ import annotations

import base64
import json
import random

import pytest

from tcme.cli import main

V4 = "tdx/dcapqvl_v4_uptodate"
V5_NO_LEVEL = "tdx/dcapqvl_v5_no_tcb_level_match"
TINFOIL = "tdx/tinfoil_v4_agpl"
SPR = "tdx/gotdxguest_v4_spr"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def verify(capsys, vector, quote, collateral, at, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "evidence", "verify", str(quote), "--collateral", str(vector(collateral)),
        "--at", at, *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("quote", "collateral", "at", "fmspc"),
    [
        (f"{V4}/quote.bin", f"{V4}/collateral.json", "2025-07-19T10:00:34Z", "b0c06f000000"),
        (f"{TINFOIL}/quote.bin", f"{TINFOIL}/collateral", "2026-02-01T00:00:00Z", "90c06f000000"),
        (
            "tdx/gotdxguest_v5/quote.bin",
            f"{TINFOIL}/collateral",
            "2026-02-03T01:00:00Z",
            "90c06f000000",
        ),
    ],
)
def test_valid_quotes_accept_at_their_time(capsys, vector, quote, collateral, at, fmspc):
    code, out, err = verify(capsys, vector, vector(quote), collateral, at, "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["accepted"] is True
    assert result["tee"] == "tdx" and result["simulated"] is False
    assert result["tcb"]["tcb_status"] == "UpToDate"
    assert result["tcb"]["advisory_ids"] == []
    assert result["tcb"]["fmspc"] == fmspc
    assert result["measurement"] == result["td_report"]["mr_td"]
    assert "genuine Intel TDX" in result["verdict"]


def test_text_output_names_status_and_registers(capsys, vector):
    code, out, _ = verify(
        capsys, vector, vector(f"{V4}/quote.bin"), f"{V4}/collateral.json", "2025-07-19T10:00:34Z"
    )
    assert code == 0
    assert out.startswith("ACCEPTED: genuine Intel TDX evidence")
    assert "TCB status    UpToDate (advisories: none)" in out
    assert "MRTD          91eb2b44d141d4ec" in out


def test_v5_no_tcb_level_rejects_with_that_reason(capsys, vector):
    code, out, err = verify(
        capsys,
        vector,
        vector(f"{V5_NO_LEVEL}/quote.bin"),
        f"{V5_NO_LEVEL}/collateral.json",
        "2026-03-20T10:41:14Z",
    )
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("tcme evidence verify: rejected: tcb_level:")
    assert "no TCB level in the TCB Info matches this platform" in line


def test_a_cache_works_as_collateral(capsys, vector, tmp_path):
    assert main(["collateral", "import", str(vector(f"{V4}/collateral.json")),
                 "--cache", str(tmp_path)]) == 0  # fmt: skip
    capsys.readouterr()
    code, _, err = run(
        capsys, "evidence", "verify", str(vector(f"{V4}/quote.bin")), "--collateral",
        str(tmp_path), "--at", "2025-07-19T10:00:34Z",
    )  # fmt: skip
    assert (code, err) == (0, "")


TAMPERED = [
    ("quote_version_byte_0x00_set_0x03.bin", 2, "quote.version"),
    ("quote_signed_data_size_byte_0x278_set_0x10.bin", 2, "quote.certification_data.size"),
    ("quote_cert_chain_byte_0x1343_set_0x32.bin", 2, "quote.pck_cert_chain"),
    ("quote_root_ca_byte_0x1329_set_0x32.bin", 1, "pck_chain.root"),
    ("quote_intermediate_ca_byte_0xf5f_set_0x32.bin", 1, "pck_chain.intermediate"),
    ("quote_pck_leaf_byte_0xb77_set_0x32.bin", 1, "pck_chain.leaf"),
    ("quote_header_byte_0x1e_set_0x32.bin", 1, "quote.signature"),
    ("quote_td_body_byte_0x3c_set_0x32.bin", 1, "quote.signature"),
]


def test_untampered_spr_quote_fails_only_at_tcb_level(capsys, vector):
    code, out, _ = verify(
        capsys, vector, vector(f"{SPR}/quote.bin"), SPR, "2023-07-01T01:00:00Z", "--json"
    )
    assert code == 1
    assert json.loads(out)["check"] == "tcb_level"


@pytest.mark.parametrize(("name", "code", "check"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_each_tampered_quote_is_rejected(capsys, vector, name, code, check):
    # Structure broken -> 2 (malformed); structure fine but a signature broken -> 1 (reject).
    quote = vector(f"{SPR}/tampered/{name}")
    got, out, err = verify(capsys, vector, quote, SPR, "2023-07-01T01:00:00Z", "--json")
    assert got == code
    result = json.loads(out)
    assert result["accepted"] is False
    assert result["check"] == check
    assert result["exit_code"] == code
    assert err == ""
    # Our words in TDX terms: no SGX "ISV enclave" wording, no Rust debug text.
    message = result["message"]
    assert "ISV enclave" not in message and "{" not in message
    assert "InvalidSignatureForPublicKey" not in message and "None" not in message
    assert "b'" not in message  # bytes shown as escaped text, not Python's b'...'
    if check == "quote.pck_cert_chain":  # says which part of the PEM block is missing
        assert "no -----END CERTIFICATE----- line follows its BEGIN line" in message


def test_policy_violations_are_all_listed(capsys, vector, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'accept = ["tdx"]\n'
        "[tdx]\n"
        f'mrtd = ["{"00" * 48}"]\n'
        "rtmr0 = { skip = true }\n"
        f'rtmr1 = ["{"11" * 48}"]\n'
        "rtmr2 = { skip = true }\n"
        'accepted_tcb_statuses = ["UpToDate"]\n'
    )
    code, out, err = verify(
        capsys, vector, vector(f"{V4}/quote.bin"), f"{V4}/collateral.json",
        "2025-07-19T10:00:34Z", "--policy", str(policy),
    )  # fmt: skip
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        "tcme evidence verify: rejected: mrtd: not an allowed value (expected 0000"
    )
    assert lines[1].startswith("tcme evidence verify: rejected: rtmr1:")


def test_bad_tdx_policy_table_exits_2(capsys, vector, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[tdx]\nmrdt = ["00"]\n')
    code, _, err = verify(
        capsys, vector, vector(f"{V4}/quote.bin"), f"{V4}/collateral.json",
        "2025-07-19T10:00:34Z", "--policy", str(policy),
    )  # fmt: skip
    assert code == 2
    assert "policy.tdx" in err


def test_report_data_binding(capsys, vector):
    quote = vector(f"{V4}/quote.bin")
    args = (f"{V4}/collateral.json", "2025-07-19T10:00:34Z")
    code, out, _ = verify(capsys, vector, quote, *args, "--json")
    good = json.loads(out)["report_data"]
    assert verify(capsys, vector, quote, *args, "--report-data", good)[0] == 0
    code, _, err = verify(capsys, vector, quote, *args, "--report-data", "00" * 64)
    assert code == 1
    assert "report_data" in err


def test_hex_and_base64_quotes_are_detected(capsys, vector, tmp_path):
    raw = vector(f"{V4}/quote.bin").read_bytes()
    for name, content in (("q.hex", raw.hex().encode()), ("q.b64", base64.b64encode(raw))):
        path = tmp_path / name
        path.write_bytes(content)
        code, _, err = verify(capsys, vector, path, f"{V4}/collateral.json", "2025-07-19T10:00:34Z")
        assert (code, err) == (0, ""), name


def test_collateral_folder_missing_a_file_names_the_files_it_looks_for(capsys, vector):
    # gotdxguest_v5 holds only the TCB Info: the QE Identity is missing.
    quote = vector("tdx/gotdxguest_v5/quote.bin")
    code, _, err = verify(capsys, vector, quote, "tdx/gotdxguest_v5", "2026-02-03T01:00:00Z")
    assert code == 2
    assert "collateral.qe_identity: no qe_identity for fmspc 90c06f000000" in err
    assert "(expected one of qe_identity.json" in err and "['" not in err


def test_missing_collateral_is_a_usage_error(capsys, vector):
    code, out, err = run(capsys, "evidence", "verify", str(vector(f"{V4}/quote.bin")))
    assert code == 2 and out == ""
    assert "--collateral" in err
    assert "Traceback" not in err


def test_collateral_for_another_platform_exits_2(capsys, vector):
    code, _, err = verify(
        capsys, vector, vector(f"{V4}/quote.bin"), f"{TINFOIL}/collateral", "2026-02-01T00:00:00Z"
    )
    assert code == 2
    assert "collateral" in err


def test_expired_collateral_rejects(capsys, vector):
    code, _, err = verify(
        capsys, vector, vector(f"{V4}/quote.bin"), f"{V4}/collateral.json", "2025-08-01T00:00:00Z"
    )
    assert code == 1
    assert "collateral" in err


def test_random_and_truncated_input_exit_2_cleanly(capsys, vector, tmp_path):
    raw = vector(f"{V4}/quote.bin").read_bytes()
    rng = random.Random(1234)
    inputs = [raw[:n] for n in (0, 1, 47, 48, 200, 632, 636, 700, 1200, 4000, 4900)]
    inputs += [rng.randbytes(rng.randrange(1, 6000)) for _ in range(15)]
    inputs += [raw[:4] + rng.randbytes(5000)]  # a TDX header, then noise
    for index, data in enumerate(inputs):
        path = tmp_path / f"in{index}.bin"
        path.write_bytes(data)
        code, out, err = verify(
            capsys, vector, path, f"{V4}/collateral.json", "2025-07-19T10:00:34Z"
        )
        assert code == 2, (index, err)
        assert out == ""
        assert err.startswith("tcme evidence verify: error: ")
        assert len(err.splitlines()) == 1
        assert "Traceback" not in err


def test_show_prints_every_field_unverified(capsys, vector):
    code, out, _ = run(capsys, "evidence", "show", str(vector("tdx/gotdxguest_v5/quote.bin")))
    assert code == 0
    assert out.startswith("UNVERIFIED")
    assert "td_report.version: 1.5" in out
    assert "td_report.mr_service_td: " in out
    code, out, _ = run(capsys, "evidence", "show", str(vector(f"{V4}/quote.bin")), "--json")
    fields = json.loads(out)
    assert fields["tee"] == "tdx"
    assert fields["header"]["version"] == 4
    assert fields["td_report"]["rtmr3"] == "00" * 48
    assert fields["trailing_bytes"] == 70
    assert len(fields["signature"]["pck_cert_chain_sha256"]) == 3


def test_show_malformed_quote_exits_2(capsys, vector):
    code, _, err = run(
        capsys,
        "evidence",
        "show",
        str(vector(f"{SPR}/tampered/quote_version_byte_0x00_set_0x03.bin")),
    )
    assert code == 2
    assert err.startswith("tcme evidence show: error:")
