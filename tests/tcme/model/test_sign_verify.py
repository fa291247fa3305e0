"""Signing with tcme and verifying it back, and every refusal verification promises."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import model_signing
import pytest

from attestation.errors import ParseError, PolicyError, SignatureError, UsageError
from tcme.model import ModelVerifier, sign_model, verify_model
from tcme.model.digest import MIN_SHARD_SIZE


def _statement(signature: Path) -> dict:
    bundle = json.loads(signature.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def test_key_round_trip_directory(small_model, keypair, tmp_path):
    private, public = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private)
    identity = verify_model(small_model, signature, ModelVerifier.public_key(public))
    statement = _statement(signature)
    assert identity.root_digest == statement["subject"][0]["digest"]["sha256"]
    assert set(identity.files) == {"config.json", "sub/tokenizer.txt", "weights.bin"}
    assert identity.method == "key" and identity.serialization == "files"
    assert statement["predicate"]["serialization"]["method"] == "files"


def test_signature_inside_model_is_left_out(small_model, keypair):
    private, public = keypair
    signature = small_model / "model.sig"
    sign_model(small_model, signature, private_key=private)
    assert "model.sig" in _statement(signature)["predicate"]["serialization"]["ignore_paths"]
    identity = verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert "model.sig" not in identity.files


def test_single_file_model(tmp_path, keypair):
    private, public = keypair
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(5000))
    signature = tmp_path / "tiny.gguf.sig"
    sign_model(gguf, signature, private_key=private)
    identity = verify_model(gguf, signature, ModelVerifier.public_key(public))
    # model-signing names the one resource of a single-file model "." and the subject by file name.
    assert list(identity.files) == ["."]
    assert identity.model_name == "tiny.gguf"


def test_certificate_round_trip(small_model, private_ca, tmp_path):
    signature = tmp_path / "model.sig"
    sign_model(
        small_model,
        signature,
        private_key=private_ca["key"],
        signing_certificate=private_ca["leaf"],
        certificate_chain=[private_ca["intermediate"]],
    )
    identity = verify_model(
        small_model, signature, ModelVerifier.certificate_chain([private_ca["root"]])
    )
    assert identity.method == "certificate"
    assert identity.signer == "pub@example.org"  # the leaf's SAN


def test_certificate_other_root_fail(small_model, private_ca, tmp_path):
    signature = tmp_path / "model.sig"
    sign_model(
        small_model,
        signature,
        private_key=private_ca["key"],
        signing_certificate=private_ca["leaf"],
        certificate_chain=[private_ca["intermediate"]],
    )
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(
            small_model, signature, ModelVerifier.certificate_chain([private_ca["other_root"]])
        )


def test_empty_certificate_chain_is_refused():
    """An empty chain would make model-signing trust the web PKI; we never allow that."""
    with pytest.raises(UsageError, match="certificate_chain"):
        ModelVerifier.certificate_chain([])


def test_shards_round_trip(small_model, keypair, tmp_path):
    private, public = keypair
    big = small_model / "weights.bin"
    big.write_bytes(os.urandom(3 * MIN_SHARD_SIZE + 123))
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private, shard_size=MIN_SHARD_SIZE)
    identity = verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert identity.serialization == "shards" and identity.shard_size == MIN_SHARD_SIZE
    weight_shards = sorted(name for name in identity.files if name.startswith("weights.bin:"))
    assert len(weight_shards) == 4


def test_shard_change_names_file_and_shard_fail(small_model, keypair, tmp_path):
    private, public = keypair
    big = small_model / "weights.bin"
    big.write_bytes(os.urandom(2 * MIN_SHARD_SIZE))
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private, shard_size=MIN_SHARD_SIZE)
    data = bytearray(big.read_bytes())
    data[MIN_SHARD_SIZE + 5] ^= 0xFF
    big.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match=r"model\.file_changed\[weights\.bin\]"):
        verify_model(small_model, signature, ModelVerifier.public_key(public))


@pytest.mark.parametrize("change", ["changed", "missing", "extra"])
def test_file_changes_fail(small_model, keypair, tmp_path, change):
    private, public = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private)
    if change == "changed":
        (small_model / "config.json").write_text('{"layers": 3}')
        name = "config.json"
    elif change == "missing":
        (small_model / "sub" / "tokenizer.txt").unlink()
        name = "sub/tokenizer.txt"
    else:
        (small_model / "sub" / "planted.py").write_text("print('hi')")
        name = "sub/planted.py"
    with pytest.raises(SignatureError) as caught:
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert caught.value.check == f"model.file_{change}[{name}]"


def test_wrong_key_fail(small_model, keypair, tmp_path):
    from tcme.model import generate_signing_key

    private, _ = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private)
    _, other_public = generate_signing_key(tmp_path / "other")
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(small_model, signature, ModelVerifier.public_key(other_public))


def test_tampered_statement_fail(small_model, keypair, tmp_path):
    """Editing the signed payload (here: dropping a resource) breaks the signature."""
    private, public = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private)
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["serialization"]["ignore_paths"].append("weights.bin")
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(small_model, signature, ModelVerifier.public_key(public))


def test_unexpected_ignore_paths_fail(small_model, keypair, tmp_path):
    """The signer left ``sub`` out; a verifier that did not allow it refuses."""
    private, public = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private, ignore_paths=[Path("sub")])
    with pytest.raises(PolicyError, match=r"model\.ignore_paths") as caught:
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert caught.value.actual == ["sub"]
    # Allowed by the verifier (relative or absolute inside the model), it verifies.
    for allowed in (Path("sub"), small_model / "sub"):
        identity = verify_model(
            small_model, signature, ModelVerifier.public_key(public), ignore_paths=[allowed]
        )
        assert "sub/tokenizer.txt" not in identity.files


def test_ignore_path_outside_model_is_usage_error(small_model, keypair, tmp_path):
    private, _ = keypair
    with pytest.raises(UsageError, match="inside the model"):
        sign_model(small_model, tmp_path / "s.sig", private_key=private, ignore_paths=[tmp_path])


def test_symlink_refused_unless_allowed(small_model, keypair, tmp_path):
    private, public = keypair
    (small_model / "link.bin").symlink_to(small_model / "weights.bin")
    with pytest.raises(PolicyError, match=r"model\.symlink"):
        sign_model(small_model, tmp_path / "s.sig", private_key=private)
    signature = tmp_path / "allowed.sig"
    sign_model(small_model, signature, private_key=private, allow_symlinks=True)
    with pytest.raises(PolicyError, match=r"model\.symlink"):
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    identity = verify_model(
        small_model, signature, ModelVerifier.public_key(public), allow_symlinks=True
    )
    assert identity.files["link.bin"] == identity.files["weights.bin"]


def test_hash_method_not_accepted_fail(small_model, keypair, tmp_path):
    """A genuine signature over BLAKE2 digests (made by model-signing itself) is refused."""
    private, public = keypair
    signature = tmp_path / "blake2.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake2")
    ).sign(small_model, signature)
    with pytest.raises(PolicyError, match=r"model\.serialization\.hash_type") as caught:
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    assert caught.value.actual == "blake2b"  # the name model-signing records


def test_tiny_shards_refused(small_model, keypair, tmp_path):
    private, public = keypair
    signature = tmp_path / "tiny.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        model_signing.hashing.Config().use_shard_serialization(shard_size=4096)
    ).sign(small_model, signature)
    with pytest.raises(PolicyError, match=r"model\.serialization\.shard_size"):
        verify_model(small_model, signature, ModelVerifier.public_key(public))
    with pytest.raises(UsageError, match=r"model\.shard_size"):
        sign_model(small_model, tmp_path / "x.sig", private_key=private, shard_size=4096)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not json", ParseError),
        (b"[]", ParseError),
        (b'{"mediaType": "x", "verificationMaterial": {"publicKey": {}}}', ParseError),
    ],
)
def test_malformed_signature_fail(small_model, keypair, tmp_path, content, error):
    signature = tmp_path / "bad.sig"
    signature.write_bytes(content)
    with pytest.raises(error, match=r"model\.signature"):
        verify_model(small_model, signature, ModelVerifier.public_key(keypair[1]))


def test_sign_needs_a_method(small_model, tmp_path):
    with pytest.raises(UsageError, match="choose a method"):
        sign_model(small_model, tmp_path / "s.sig")


def test_sign_writes_nothing_on_failure(small_model, tmp_path):
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    signature = tmp_path / "s.sig"
    with pytest.raises(UsageError):
        sign_model(small_model, signature, private_key=bad_key)
    assert not signature.exists()


def test_ignoring_a_signed_file_is_refused(small_model, keypair, tmp_path):
    """Ignoring a file the signer covered would leave part of the root digest unchecked."""
    private, public = keypair
    signature = tmp_path / "model.sig"
    sign_model(small_model, signature, private_key=private)
    with pytest.raises(PolicyError, match=r"model\.ignore_paths\.signed") as caught:
        verify_model(
            small_model, signature, ModelVerifier.public_key(public), ignore_paths=[Path("sub")]
        )
    assert caught.value.actual == ["sub/tokenizer.txt"]


def test_git_metadata_left_out_unless_asked(small_model, keypair, tmp_path):
    private, public = keypair
    (small_model / ".gitattributes").write_text("*.bin filter=lfs")
    default_sig, with_git_sig = tmp_path / "default.sig", tmp_path / "git.sig"
    sign_model(small_model, default_sig, private_key=private)
    sign_model(small_model, with_git_sig, private_key=private, ignore_git_paths=False)
    verifier = ModelVerifier.public_key(public)
    assert ".gitattributes" not in verify_model(small_model, default_sig, verifier).files
    # A signature that covers git metadata cannot be checked while ignoring it ...
    with pytest.raises(PolicyError, match=r"model\.ignore_paths\.signed"):
        verify_model(small_model, with_git_sig, verifier)
    # ... and verifies when the verifier includes it too.
    identity = verify_model(small_model, with_git_sig, verifier, ignore_git_paths=False)
    assert ".gitattributes" in identity.files
