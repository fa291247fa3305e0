"""tcme and the official model-signing tool agree: same manifests; each verifies the other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import model_signing
import pytest

from attestation.errors import PolicyError, SignatureError
from tcme.model import ModelVerifier, sign_model, verify_model
from tcme.model.digest import MIN_SHARD_SIZE, Serialization, hash_model
from tcme.model.layout import ModelLayout
from tcme.model.verify import IGNORE_IS_SIGNATURE, IGNORE_NAMES_NOTHING


def official(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the official ``model_signing`` CLI (the one model-signing 1.1.1 installs)."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def rich_model(small_model: Path) -> Path:
    """Nested folders, a hidden file, an empty file, git metadata and a file to ignore."""
    (small_model / ".hidden").write_text("dotfile")
    (small_model / "empty.bin").write_bytes(b"")
    (small_model / "deep" / "er").mkdir(parents=True)
    (small_model / "deep" / "er" / "w.bin").write_bytes(bytes(3 * MIN_SHARD_SIZE // 2))
    (small_model / ".git").mkdir()
    (small_model / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (small_model / "notes.md").write_text("not part of the model")
    return small_model


@pytest.mark.parametrize("shard_size", [None, MIN_SHARD_SIZE])
def test_manifest_equals_model_signing(rich_model, shard_size):
    ignored = [Path("notes.md")]
    config = model_signing.hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)
    if shard_size:
        config.use_shard_serialization(shard_size=shard_size)
        serialization = Serialization("shards", shard_size=shard_size)
    else:
        config.use_file_serialization()
        serialization = Serialization("files")
    theirs = {
        rd.identifier: (rd.digest.algorithm, rd.digest.digest_hex)
        for rd in config.hash(rich_model).resource_descriptors()
    }
    layout = ModelLayout.resolve(rich_model, signature=None, ignore_paths=ignored)
    ours = hash_model(layout.files(allow_symlinks=False), serialization).resources
    assert ours == theirs
    assert any(name.startswith("deep/er/w.bin") for name in ours)
    assert not any(name.startswith((".git", "notes.md")) for name in ours)


def test_official_cli_verifies_tcme_key_bundles(small_model, keypair, tmp_path):
    private, public = keypair
    inside = small_model / "model.sig"
    sign_model(small_model, inside, private_key=private)
    result = official("verify", "key", "--public_key", public, "--signature", inside, small_model)
    assert result.returncode == 0, result.stderr
    assert "Verification succeeded" in result.stdout

    gguf = small_model / "weights.bin"
    single = tmp_path / "weights.sig"
    sign_model(gguf, single, private_key=private)
    result = official("verify", "key", "--public_key", public, "--signature", single, gguf)
    assert result.returncode == 0, result.stderr

    gguf.write_bytes(b"swapped")
    result = official("verify", "key", "--public_key", public, "--signature", single, gguf)
    assert result.returncode != 0


def test_official_cli_verifies_tcme_certificate_bundle(small_model, private_ca, tmp_path):
    signature = tmp_path / "model.sig"
    sign_model(
        small_model,
        signature,
        private_key=private_ca["key"],
        signing_certificate=private_ca["leaf"],
        certificate_chain=[private_ca["intermediate"]],
    )
    result = official(
        "verify",
        "certificate",
        "--certificate_chain",
        private_ca["root"],
        "--signature",
        signature,
        small_model,
    )
    assert result.returncode == 0, result.stderr


def test_tcme_verifies_official_key_bundle(small_model, keypair, tmp_path):
    private, public = keypair
    (small_model / "README.md").write_text("left out by the signer")
    signature = tmp_path / "model.sig"
    result = official(
        "sign",
        "key",
        "--private_key",
        private,
        "--signature",
        signature,
        "--ignore-paths",
        small_model / "README.md",
        small_model,
    )
    assert result.returncode == 0, result.stderr
    identity = verify_model(
        small_model,
        signature,
        ModelVerifier.public_key(public),
        ignore_paths=[Path("README.md")],
    )
    assert set(identity.files) == {"config.json", "sub/tokenizer.txt", "weights.bin"}
    (small_model / "weights.bin").write_bytes(b"different")
    with pytest.raises(SignatureError, match=r"file_changed\[weights\.bin\]"):
        verify_model(
            small_model,
            signature,
            ModelVerifier.public_key(public),
            ignore_paths=[Path("README.md")],
        )


def test_tcme_verifies_official_certificate_and_single_file_bundles(
    small_model, private_ca, tmp_path
):
    gguf = small_model / "weights.bin"
    signature = tmp_path / "weights.sig"
    result = official(
        "sign",
        "certificate",
        "--private_key",
        private_ca["key"],
        "--signing_certificate",
        private_ca["leaf"],
        "--certificate_chain",
        private_ca["intermediate"],
        "--signature",
        signature,
        gguf,
    )
    assert result.returncode == 0, result.stderr
    identity = verify_model(gguf, signature, ModelVerifier.certificate_chain([private_ca["root"]]))
    assert list(identity.files) == ["."]
    assert identity.signer == "pub@example.org"


def _official_bundle_with_signature_inside(model: Path, private: Path) -> Path:
    """Sign as the official tool does when the signature is written into the model folder:
    the bundle records ``model.sig`` among its ignore paths."""
    inside = model / "model.sig"
    result = official("sign", "key", "--private_key", private, "--signature", inside, model)
    assert result.returncode == 0, result.stderr
    return inside


def test_official_bundle_kept_outside_the_model_is_accepted_and_says_why(
    small_model, keypair, tmp_path
):
    private, public = keypair
    inside = _official_bundle_with_signature_inside(small_model, private)
    outside = tmp_path / "model.sig"
    inside.rename(outside)
    # The official verifier accepts this layout...
    result = official("verify", "key", "--public_key", public, "--signature", outside, small_model)
    assert result.returncode == 0, result.stderr
    # ...and so does tcme, naming the recorded ignore path it accepted and why.
    identity = verify_model(small_model, outside, ModelVerifier.public_key(public))
    assert dict(identity.accepted_ignore_paths) == {"model.sig": IGNORE_NAMES_NOTHING}
    assert set(identity.files) == {"config.json", "sub/tokenizer.txt", "weights.bin"}


def test_official_bundle_with_a_copy_of_the_signature_inside_is_accepted(
    small_model, keypair, tmp_path
):
    private, public = keypair
    inside = _official_bundle_with_signature_inside(small_model, private)
    outside = tmp_path / "model.sig"
    outside.write_bytes(inside.read_bytes())
    identity = verify_model(small_model, outside, ModelVerifier.public_key(public))
    assert dict(identity.accepted_ignore_paths) == {"model.sig": IGNORE_IS_SIGNATURE}


def test_recorded_ignore_path_that_hides_a_model_file_is_refused(small_model, keypair, tmp_path):
    # The signer left out a file that is in the model: ignoring it would hide it.
    private, public = keypair
    (small_model / "extra.bin").write_bytes(b"unsigned weights")
    signature = tmp_path / "model.sig"
    result = official(
        "sign", "key", "--private_key", private, "--signature", signature,
        "--ignore-paths", small_model / "extra.bin", small_model,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with pytest.raises(PolicyError) as info:
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert info.value.check == "model.ignore_paths" and "extra.bin" in info.value.message()


def test_signature_named_file_that_is_not_the_signature_name_is_refused(
    small_model, keypair, tmp_path
):
    # model.sig recorded and present in the tree, but the signature in use has another
    # name: that model.sig is some other file, and ignoring it would hide it.
    private, public = keypair
    inside = _official_bundle_with_signature_inside(small_model, private)
    outside = tmp_path / "bundle.json"
    outside.write_bytes(inside.read_bytes())
    with pytest.raises(PolicyError, match=r"model\.ignore_paths"):
        verify_model(small_model, outside, ModelVerifier.public_key(public))


def test_single_file_model_is_named_by_its_file_in_errors(small_model, keypair, tmp_path):
    private, public = keypair
    gguf = small_model / "weights.bin"
    signature = tmp_path / "weights.sig"
    sign_model(gguf, signature, private_key=private)
    gguf.write_bytes(b"swapped")
    with pytest.raises(SignatureError) as info:
        verify_model(gguf, signature, ModelVerifier.public_key(public))
    assert "weights.bin" in info.value.message() and "[.]" not in info.value.message()
