"""``tcme collateral fetch|import|show``, offline: fetch talks to a local PCS stand-in."""

from __future__ import annotations

import json

import pytest

import tcme.cli
from tests.attestation.tdx import fake_pcs

TINFOIL = "tdx/tinfoil_v4_agpl"


@pytest.fixture(autouse=True)
def only_collateral_group(monkeypatch):
    # Exercise this command group through the real dispatcher (exit codes, error lines)
    # without depending on every other group importing cleanly.
    monkeypatch.setattr(tcme.cli, "_GROUPS", ("collateral",))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = tcme.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pcs(vector):
    routes = fake_pcs.routes_from_folder(vector(f"{TINFOIL}/collateral"), "90c06f000000")
    with fake_pcs.serve(routes) as url:
        yield url


def test_fetch_by_fmspc_then_show(capsys, pcs, tmp_path):
    code, out, err = run(
        capsys,
        "collateral", "fetch", "--fmspc", "90C06F000000", "--pcs-url", pcs,
        "--root-ca-crl-url", pcs + fake_pcs.ROOT_CA_CRL_PATH, "--cache", str(tmp_path),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "fetched TDX collateral for fmspc 90c06f000000" in out
    assert (tmp_path / "tdx" / "90c06f000000" / "tcb_info.json").is_file()

    code, out, _ = run(
        capsys, "collateral", "show", "--cache", str(tmp_path), "--at", "2026-02-01T00:00:00Z",
        "--json",
    )  # fmt: skip
    assert code == 0
    [entry] = json.loads(out)["tdx"]
    assert entry["fmspc"] == "90c06f000000"
    assert entry["state"] == "fresh"
    assert entry["valid_until"] == "2026-02-11T15:46:45Z"

    code, out, _ = run(
        capsys, "collateral", "show", "--cache", str(tmp_path), "--at", "2026-03-01T00:00:00Z"
    )
    assert code == 0
    assert "expired" in out


def test_fetch_by_quote_from_a_pccs(capsys, vector, tmp_path):
    routes = fake_pcs.routes_from_folder(vector(f"{TINFOIL}/collateral"), "90c06f000000", pccs=True)
    with fake_pcs.serve(routes) as url:
        code, out, err = run(
            capsys,
            "collateral", "fetch", "--quote", str(vector("tdx/gotdxguest_v5/quote.bin")),
            "--pccs-url", url, "--cache", str(tmp_path), "--json",
        )  # fmt: skip
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["fmspc"] == "90c06f000000"
    assert result["pck_ca"] == "platform"
    assert routes.requests[-1] == "/sgx/certification/v4/rootcacrl"


def test_fetch_failure_exits_3_with_one_line(capsys, pcs, tmp_path):
    code, out, err = run(
        capsys, "collateral", "fetch", "--fmspc", "b0c06f000000", "--pcs-url", pcs,
        "--cache", str(tmp_path),
    )  # fmt: skip
    assert code == 3  # the service could not give us collateral: nothing was judged
    assert out == ""
    assert err.startswith("tcme collateral fetch: unreachable: collateral.fetch: GET ")
    assert "HTTP 404" in err
    assert "Traceback" not in err
    assert not (tmp_path / "tdx").exists()


def test_fetch_needs_exactly_one_platform_and_one_service(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        tcme.cli.main(["collateral", "fetch", "--cache", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        tcme.cli.main(
            [
                "collateral", "fetch", "--fmspc", "90c06f000000", "--pcs-url", "http://a",
                "--pccs-url", "http://b", "--cache", str(tmp_path),
            ]
        )  # fmt: skip
    assert info.value.code == 2


def test_import_json_and_folder(capsys, vector, tmp_path):
    code, out, _ = run(
        capsys, "collateral", "import", str(vector("tdx/dcapqvl_v4_uptodate/collateral.json")),
        "--cache", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    assert "b0c06f000000" in out
    code, _, err = run(
        capsys, "collateral", "import", str(vector("tdx/gotdxguest_v4_spr")),
        "--cache", str(tmp_path),
    )  # fmt: skip
    assert code == 2
    assert "--fmspc is required" in err
    code, _, _ = run(
        capsys, "collateral", "import", str(vector("tdx/gotdxguest_v4_spr")),
        "--fmspc", "50806f000000", "--cache", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "collateral", "show", str(tmp_path), "--json")
    assert sorted(e["fmspc"] for e in json.loads(out)["tdx"]) == ["50806f000000", "b0c06f000000"]


@pytest.mark.parametrize("content", [b"", b"{}", b"\x89PNG\r\n", b'{"tcb_info": 1}'])
def test_import_garbage_exits_2(capsys, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, out, err = run(capsys, "collateral", "import", str(bad), "--cache", str(tmp_path / "c"))
    assert code == 2
    assert out == ""
    assert err.startswith("tcme collateral")
    assert not (tmp_path / "c").exists()


def test_show_needs_a_source(capsys):
    code, _, err = run(capsys, "collateral", "show")
    assert code == 2
    assert "--cache" in err
