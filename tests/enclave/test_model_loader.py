"""The verifying loader: llama.cpp gets exactly the signed bytes, from a sealed memfd.

Uses the real default model (SmolLM2-135M-Instruct Q4_1 from ``make model``);
skips with the reason when it is absent. Only loading is exercised here (no
decoding), so these tests are fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from attestation.errors import SignatureError, UsageError
from enclave.model_loader import load_verified_model
from tcme.model import ModelVerifier, generate_signing_key, sign_model, verify_model
from tcme.model import verify as verify_module
from tcme.model.fetch import GGUF_SHA256, default_model_path, file_sha256

pytestmark = pytest.mark.model


def memfd_contents_digest(memfd) -> str:
    """SHA-256 of what the memfd holds now, re-read through its own path."""
    hasher = hashlib.sha256()
    fd = os.open(memfd.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, 1 << 20):
            hasher.update(chunk)
    finally:
        os.close(fd)
    return hasher.hexdigest()


REPO = Path(__file__).resolve().parents[2]
ORIGINAL_NAME = b"Smollm2 135M 8k Lc100K Mix1 Ep2"
SWAPPED_NAME = b"SWAPPED 135M 8k Lc100K Mix1 Ep2"


@pytest.fixture(scope="module")
def pristine_gguf() -> Path:
    """The default model as fetched (never modified by these tests)."""
    env = os.environ.get("TCME_MODEL")
    path = Path(env) if env else default_model_path(REPO / "models")
    if not path.is_file():
        pytest.skip(f"default model not found at {path}: run `make model` (or set TCME_MODEL)")
    if file_sha256(path) != GGUF_SHA256 and not env:
        pytest.skip(f"{path} is not the pinned default model")
    return path


@pytest.fixture(scope="module")
def swapped_gguf(pristine_gguf, tmp_path_factory) -> Path:
    """A different but perfectly loadable GGUF: the same model with another general.name."""
    data = pristine_gguf.read_bytes()
    assert data.count(ORIGINAL_NAME) == 1
    path = tmp_path_factory.mktemp("swap") / "swapped.gguf"
    path.write_bytes(data.replace(ORIGINAL_NAME, SWAPPED_NAME))
    return path


@pytest.fixture
def signed(pristine_gguf, tmp_path) -> tuple[Path, Path, ModelVerifier]:
    """A private copy of the model, its fresh key signature, and the matching verifier."""
    gguf = tmp_path / pristine_gguf.name
    shutil.copyfile(pristine_gguf, gguf)
    private, public = generate_signing_key(tmp_path / "keys")
    signature = tmp_path / "model.sig"
    sign_model(gguf, signature, private_key=private)
    return gguf, signature, ModelVerifier.public_key(public)


@pytest.fixture
def no_llama(monkeypatch):
    """Make constructing a Llama a test failure (proves a refusal happened before loading)."""
    import llama_cpp

    def refuse(*args, **kwargs):
        raise AssertionError("llama.cpp was asked to load unverified bytes")

    monkeypatch.setattr(llama_cpp, "Llama", refuse)


def _name(loaded) -> str:
    return loaded.llama.metadata["general.name"]


def test_signed_model_verifies_and_loads(signed):
    gguf, signature, verifier = signed
    with load_verified_model(gguf, signature, verifier, n_ctx=256) as loaded:
        assert loaded.loaded_digest == GGUF_SHA256
        assert loaded.identity.files == {".": GGUF_SHA256}
        assert loaded.identity.root_digest == verify_model(gguf, signature, verifier).root_digest
        assert loaded.gguf_name == "."
        assert loaded.memfd.sealed
        assert memfd_contents_digest(loaded.memfd) == GGUF_SHA256
        assert _name(loaded) == ORIGINAL_NAME.decode()
        assert loaded.llama.n_ctx() == 256
    assert loaded.memfd.fd == -1


def test_directory_model_with_signature_inside(pristine_gguf, tmp_path):
    model = tmp_path / "smollm2"
    model.mkdir()
    shutil.copyfile(pristine_gguf, model / pristine_gguf.name)
    private, public = generate_signing_key(tmp_path / "keys")
    sign_model(model, model / "model.sig", private_key=private)
    with load_verified_model(
        model, model / "model.sig", ModelVerifier.public_key(public)
    ) as loaded:
        assert loaded.gguf_name == pristine_gguf.name
        assert loaded.loaded_digest == GGUF_SHA256


def test_shard_signature_loads(signed, tmp_path):
    gguf, _, verifier = signed
    private = tmp_path / "keys" / "signing-key.pem"
    signature = tmp_path / "shards.sig"
    sign_model(gguf, signature, private_key=private, shard_size=16 << 20)
    with load_verified_model(gguf, signature, verifier) as loaded:
        assert loaded.identity.serialization == "shards"
        assert len(loaded.identity.files) == 6
        assert memfd_contents_digest(loaded.memfd) == GGUF_SHA256
        assert _name(loaded) == ORIGINAL_NAME.decode()


def test_tampered_copy_does_not_load_fail(signed, no_llama):
    gguf, signature, verifier = signed
    with open(gguf, "r+b") as handle:
        handle.seek(50_000_000)
        byte = handle.read(1)
        handle.seek(50_000_000)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(SignatureError) as caught:
        load_verified_model(gguf, signature, verifier)
    assert caught.value.check == f"model.file_changed[{gguf.name}]"
    assert caught.value.expected == GGUF_SHA256
    assert caught.value.actual == file_sha256(gguf)


def test_swap_after_verification_is_not_served_fail(signed, swapped_gguf, no_llama):
    """verify_model passed; then the file is replaced by another valid GGUF: the load refuses."""
    gguf, signature, verifier = signed
    verify_model(gguf, signature, verifier)
    shutil.copyfile(swapped_gguf, gguf.with_suffix(".new"))
    os.replace(gguf.with_suffix(".new"), gguf)
    with pytest.raises(SignatureError, match=r"model\.file_changed\[") as caught:
        load_verified_model(gguf, signature, verifier)
    assert caught.value.actual == file_sha256(swapped_gguf)


def test_swap_inside_the_load_window_fail(signed, swapped_gguf, monkeypatch, no_llama):
    """The swap lands after the signature check and before the bytes are read: still refused."""
    gguf, signature, verifier = signed
    real_hash_model = verify_module.hash_model
    swapped = []

    def swap_then_hash(*args, **kwargs):
        shutil.copyfile(swapped_gguf, gguf)  # in place: same inode, new bytes
        swapped.append(True)
        return real_hash_model(*args, **kwargs)

    monkeypatch.setattr(verify_module, "hash_model", swap_then_hash)
    with pytest.raises(SignatureError) as caught:
        load_verified_model(gguf, signature, verifier)
    assert swapped
    assert caught.value.check == f"model.file_changed[{gguf.name}]"
    assert (caught.value.expected, caught.value.actual) == (GGUF_SHA256, file_sha256(swapped_gguf))


def test_swap_after_load_changes_nothing_served(signed, swapped_gguf):
    """Once loaded, rewriting the file in place or renaming another over it is invisible."""
    from llama_cpp import Llama

    gguf, signature, verifier = signed
    with load_verified_model(gguf, signature, verifier) as loaded:
        shutil.copyfile(swapped_gguf, gguf)  # rewrite the very inode llama.cpp was not given
        assert memfd_contents_digest(loaded.memfd) == GGUF_SHA256
        assert _name(loaded) == ORIGINAL_NAME.decode()
        # A fresh load from the memfd path still sees the signed bytes ...
        again = Llama(model_path=str(loaded.memfd.path), verbose=False, vocab_only=True)
        assert again.metadata["general.name"] == ORIGINAL_NAME.decode()
        again.close()
        # ... while the disk now holds a different, loadable model.
        disk = Llama(model_path=str(gguf), verbose=False, vocab_only=True)
        assert disk.metadata["general.name"] == SWAPPED_NAME.decode()
        disk.close()
        with pytest.raises(PermissionError):
            os.pwrite(loaded.memfd.fd, b"X", 0)


def test_unsigned_gguf_is_refused_fail(pristine_gguf, tmp_path, no_llama):
    """A GGUF the signer left out (and the verifier allowed out) is never loaded."""
    from tcme.model.verify import verify_and_capture

    model = tmp_path / "m"
    model.mkdir()
    shutil.copyfile(pristine_gguf, model / "model.gguf")
    (model / "README.md").write_text("card")
    private, public = generate_signing_key(tmp_path / "keys")
    ignore = [Path("model.gguf")]
    sign_model(model, tmp_path / "m.sig", private_key=private, ignore_paths=ignore)
    verifier = ModelVerifier.public_key(public)
    # Ignored files are not part of the model: there is no GGUF to load.
    with pytest.raises(UsageError, match=r"exactly one \.gguf"):
        load_verified_model(model, tmp_path / "m.sig", verifier, ignore_paths=ignore)
    # And asked for explicitly, the capture refuses a file the signature does not cover.
    with pytest.raises(SignatureError, match=r"model\.file_unsigned\[model\.gguf\]"):
        verify_and_capture(
            model,
            tmp_path / "m.sig",
            verifier,
            ignore_paths=ignore,
            capture="model.gguf",
            require_capture_signed=True,
        )


def test_directory_needs_exactly_one_gguf(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.gguf").write_bytes(b"GGUF")
    (model / "b.gguf").write_bytes(b"GGUF")
    private, public = generate_signing_key(tmp_path / "keys")
    sign_model(model, tmp_path / "m.sig", private_key=private)
    with pytest.raises(UsageError, match=r"exactly one \.gguf"):
        load_verified_model(model, tmp_path / "m.sig", ModelVerifier.public_key(public))
