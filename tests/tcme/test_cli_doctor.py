"""``tcme doctor`` over fake /dev and /sys trees (plain files stand in for device nodes)."""

from __future__ import annotations

import json

from tcme.cli import main


def _touch(root, relative):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_nothing_usable_exits_1_and_says_why(tmp_path, capsys):
    assert main(["doctor", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "[ok]" not in out
    assert "configfs not mounted" in out
    assert "not an SEV-SNP guest" in out
    assert "not a TDX guest" in out
    assert "--simulated" in out


def test_sev_guest_device_is_selected(tmp_path, capsys):
    _touch(tmp_path, "dev/sev-guest")
    assert main(["doctor", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[ok] sev-guest" in out
    assert "selected: sev-guest (sev-snp)" in out


def test_tdx_device_without_configfs_is_explained(tmp_path, capsys):
    _touch(tmp_path, "dev/tdx_guest")
    assert main(["doctor", "--root", str(tmp_path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["selected"] is None
    tdx = next(p for p in result["providers"] if p["name"] == "tdx-guest")
    assert not tdx["available"] and "only gives a TDREPORT" in tdx["reason"]


def test_directory_that_is_not_configfs_is_reported(tmp_path, capsys):
    (tmp_path / "sys/kernel/config/tsm/report").mkdir(parents=True)
    _touch(tmp_path, "dev/sev-guest")
    assert main(["doctor", "--root", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    configfs = result["providers"][0]
    assert configfs["name"] == "configfs-tsm" and not configfs["available"]
    assert "is this really configfs-tsm" in configfs["reason"]
    assert (result["selected"], result["tee"]) == ("sev-guest", "sev-snp")
    # The probe cleaned up after itself.
    assert list((tmp_path / "sys/kernel/config/tsm/report").iterdir()) == []
