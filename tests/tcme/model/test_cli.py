"""``tcme model``: exit codes, output, and the progress bar's TTY behaviour."""

from __future__ import annotations

import io
import json
import os
import pty
import select
from pathlib import Path

import pytest

from tcme.cli import main
from tcme.model.progress import Progress

IBM_IDENTITY = "stefanb@us.ibm.com"
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


def test_keygen_sign_verify(tmp_path, small_model, capsys):
    assert main(["model", "keygen", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert "fingerprint: sha256:" in out
    private, public = tmp_path / "k" / "signing-key.pem", tmp_path / "k" / "signing-key.pub.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    # keygen refuses to overwrite a key
    assert main(["model", "keygen", "--out", str(tmp_path / "k")]) == 2

    signature = tmp_path / "m.sig"
    assert (
        main(
            [
                "model",
                "sign",
                str(small_model),
                "--key",
                str(private),
                "--signature",
                str(signature),
            ]
        )
        == 0
    )
    assert signature.is_file()
    capsys.readouterr()

    args = [
        "model",
        "verify",
        str(small_model),
        "--signature",
        str(signature),
        "--public-key",
        str(public),
    ]
    assert main([*args, "--json"]) == 0
    identity = json.loads(capsys.readouterr().out)
    assert identity["method"] == "key" and len(identity["root_digest"]) == 64

    (small_model / "config.json").write_text("tampered")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "rejected: model.file_changed[config.json]" in err
    assert "Traceback" not in err


def test_sign_default_signature_path(tmp_path, small_model, keypair, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["model", "sign", str(small_model), "--key", str(keypair[0]), "--quiet"]) == 0
    assert (tmp_path / "model.sig").is_file()


def test_verify_vector_with_trust_config(mt, trust_roots, capsys):
    folder = mt / "v1.1.0-sigstore"
    code = main(
        [
            "model", "verify", str(folder),
            "--signature", str(folder / "model.sig"),
            "--identity", IBM_IDENTITY, "--issuer", IBM_ISSUER,
            "--trust-config", str(trust_roots / "public_good_trusted_root.json"),
            "--ignore-paths", "ignore-me",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert IBM_IDENTITY in out and "root digest" in out


@pytest.mark.parametrize(
    "extra",
    [
        [],  # no trust named
        ["--public-key", "k.pem", "--identity", "a", "--issuer", "b"],  # two trusts
        ["--identity", "a"],  # identity without issuer
        ["--public-key", "k.pem", "--trust-config", "t.json"],  # trust config without sigstore
    ],
)
def test_verify_usage_errors(small_model, tmp_path, capsys, extra):
    signature = tmp_path / "s.sig"
    signature.write_text("{}")
    assert main(["model", "verify", str(small_model), "--signature", str(signature), *extra]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_verify_missing_signature_is_usage_error(small_model, keypair, tmp_path, capsys):
    code = main(
        ["model", "verify", str(small_model), "--signature", str(tmp_path / "nope.sig"),
         "--public-key", str(keypair[1])]
    )  # fmt: skip
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def _read_all(fd: int) -> str:
    """Everything written to the pseudo-terminal so far (one read may return only a part)."""
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_bar_only_on_a_terminal(monkeypatch):
    # Not a TTY: nothing drawn.
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    bar = Progress.for_terminal("hashing", 1000, quiet=False)
    bar.advance(1000)
    bar.finish()
    assert piped.getvalue() == ""

    # A real pseudo-terminal: a bar; with quiet: nothing.
    controller, terminal = pty.openpty()
    try:
        with os.fdopen(terminal, "w", closefd=False) as tty_stream:
            monkeypatch.setattr("sys.stderr", tty_stream)
            quiet = Progress.for_terminal("hashing", 1000, quiet=True)
            quiet.advance(1000)
            quiet.finish()
            shown = Progress.for_terminal("hashing", 1000, quiet=False)
            shown.advance(500)
            shown.finish()
        drawn = _read_all(controller)
    finally:
        os.close(controller)
        os.close(terminal)
    assert drawn.count("hashing [") >= 1
    assert "50.0%" in drawn
    assert drawn.endswith("\n") or drawn.endswith("\r\n")


def test_progress_counts_bytes_from_verification(small_model, keypair, tmp_path, monkeypatch):
    """Hashing reports every byte it reads (what the bar shows)."""
    from tcme.model import sign_model, verify_model
    from tcme.model import verify as verify_module
    from tcme.model.identity import ModelVerifier

    seen: list[Progress] = []
    original = Progress.for_terminal

    def spy(label: str, total: int, *, quiet: bool) -> Progress:
        bar = original(label, total, quiet=quiet)
        seen.append(bar)
        return bar

    sign_model(small_model, tmp_path / "s.sig", private_key=keypair[0])
    monkeypatch.setattr(verify_module.Progress, "for_terminal", staticmethod(spy))
    verify_model(small_model, tmp_path / "s.sig", ModelVerifier.public_key(keypair[1]))
    total = sum(p.stat().st_size for p in Path(small_model).rglob("*") if p.is_file())
    assert seen and seen[0].done == total
