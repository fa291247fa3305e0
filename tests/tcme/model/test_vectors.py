"""Real OMS signatures made by the official model_signing tool (sigstore/model-transparency).

Each folder verifies offline with the identity its README gives; each fails
after a one-byte change to a model file, and with a wrong identity or key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attestation.errors import PolicyError, SignatureError
from tcme.model import ModelVerifier, verify_model

IBM_IDENTITY = "stefanb@us.ibm.com"
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"
SIGSTORE_FOLDERS = ("v1.1.0-sigstore", "v1.0.1-sigstore", "v1.0.0-sigstore")
# The subject digest of the signme-1/signme-2 folders (checked independently in the
# vectors README: sha256 over the per-file digests, sorted by name).
SIGSTORE_ROOT_DIGEST = "61d4849d9d90076d6215f4d525f13d6574af8e3f67aef3e6f36fc40a14fdd226"


def _ignore(folder: Path) -> list[Path]:
    # v1.0.1 and later folders hold an empty ``ignore-me`` the signer left out.
    return [Path("ignore-me")] if (folder / "ignore-me").exists() else []


def _sigstore(trust_roots: Path, identity: str = IBM_IDENTITY) -> ModelVerifier:
    return ModelVerifier.sigstore(
        identity, IBM_ISSUER, trust_roots / "public_good_trusted_root.json"
    )


@pytest.mark.parametrize("name", SIGSTORE_FOLDERS)
def test_sigstore_folder_verifies_offline(mt, trust_roots, name):
    folder = mt / name
    identity = verify_model(
        folder, folder / "model.sig", _sigstore(trust_roots), ignore_paths=_ignore(folder)
    )
    assert identity.method == "sigstore"
    assert identity.signer == IBM_IDENTITY
    assert identity.issuer == IBM_ISSUER
    assert identity.root_digest == SIGSTORE_ROOT_DIGEST
    assert set(identity.files) == {"signme-1", "signme-2"}
    assert identity.signer_fingerprint.startswith("sha256:")


@pytest.mark.parametrize("name", SIGSTORE_FOLDERS)
def test_sigstore_one_byte_change_fail(mt, trust_roots, tmp_path, name, writable_copy, flip_byte):
    folder = writable_copy(mt / name, tmp_path / name)
    flip_byte(folder / "signme-1", 3)
    with pytest.raises(SignatureError, match=r"model\.file_changed\[signme-1\]") as caught:
        verify_model(
            folder, folder / "model.sig", _sigstore(trust_roots), ignore_paths=_ignore(folder)
        )
    assert (
        caught.value.expected == "f6310066c7320497ea554260c32c43660bff648cb2a61194832cc086077085e1"
    )
    assert caught.value.actual != caught.value.expected


@pytest.mark.parametrize("name", SIGSTORE_FOLDERS)
def test_sigstore_wrong_identity_fail(mt, trust_roots, name):
    folder = mt / name
    with pytest.raises(SignatureError, match="SANs do not match") as caught:
        verify_model(
            folder,
            folder / "model.sig",
            _sigstore(trust_roots, identity="someone-else@us.ibm.com"),
            ignore_paths=_ignore(folder),
        )
    assert caught.value.check == "model.signature"


def test_sigstore_wrong_issuer_fail(mt, trust_roots):
    folder = mt / "v1.1.0-sigstore"
    verifier = ModelVerifier.sigstore(
        IBM_IDENTITY, "https://accounts.google.com", trust_roots / "public_good_trusted_root.json"
    )
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(folder, folder / "model.sig", verifier, ignore_paths=_ignore(folder))


def test_sigstore_staging_root_fail(mt, trust_roots):
    folder = mt / "v1.1.0-sigstore"
    verifier = ModelVerifier.sigstore(
        IBM_IDENTITY, IBM_ISSUER, trust_roots / "staging_trusted_root.json"
    )
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(folder, folder / "model.sig", verifier, ignore_paths=_ignore(folder))


def test_sigstore_client_trust_config_file(mt, trust_roots, tmp_path):
    """A full ClientTrustConfig (root + signing config) works like a bare root."""
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads((trust_roots / "public_good_trusted_root.json").read_text()),
        "signingConfig": json.loads(
            (trust_roots / "public_good_signing_config.v0.2.json").read_text()
        ),
    }
    path = tmp_path / "trust_config.json"
    path.write_text(json.dumps(config))
    folder = mt / "v1.1.0-sigstore"
    verifier = ModelVerifier.sigstore(IBM_IDENTITY, IBM_ISSUER, path)
    identity = verify_model(folder, folder / "model.sig", verifier, ignore_paths=_ignore(folder))
    assert identity.root_digest == SIGSTORE_ROOT_DIGEST


def test_sigstore_embedded_public_good_root(mt):
    """Without a trust config the root shipped in the sigstore package is used, offline."""
    folder = mt / "v1.0.0-sigstore"
    verifier = ModelVerifier.sigstore(IBM_IDENTITY, IBM_ISSUER, None)
    assert "embedded" in verifier.trust_source
    assert verify_model(folder, folder / "model.sig", verifier).signer == IBM_IDENTITY


def test_signature_ignore_paths_need_verifier_consent_fail(mt, trust_roots):
    """v1.1.0 signatures leave out ``ignore-me``; a verifier that did not allow it refuses."""
    folder = mt / "v1.1.0-sigstore"
    with pytest.raises(PolicyError, match=r"model\.ignore_paths") as caught:
        verify_model(folder, folder / "model.sig", _sigstore(trust_roots))
    assert caught.value.actual == ["ignore-me"]


def test_unsigned_extra_file_fail(mt, trust_roots):
    """v1.0.1's signature does not mention ``ignore-me``: unless ignored, it is an extra file."""
    folder = mt / "v1.0.1-sigstore"
    with pytest.raises(SignatureError, match=r"model\.file_extra\[ignore-me\]"):
        verify_model(folder, folder / "model.sig", _sigstore(trust_roots))


def test_certificate_folder_verifies(mt):
    folder = mt / "v1.1.0-certificate"
    identity = verify_model(
        folder,
        folder / "model.sig",
        ModelVerifier.certificate_chain([mt / "keys" / "ca-cert.pem"]),
        ignore_paths=[Path("ignore-me")],
    )
    assert identity.method == "certificate"
    assert identity.signer == "CN=intermediate-ca"
    assert identity.issuer is None
    assert identity.root_digest == SIGSTORE_ROOT_DIGEST


def test_certificate_one_byte_change_fail(mt, tmp_path, writable_copy, flip_byte):
    folder = writable_copy(mt / "v1.1.0-certificate", tmp_path / "cert")
    flip_byte(folder / "signme-2", 0)
    with pytest.raises(SignatureError, match=r"model\.file_changed\[signme-2\]"):
        verify_model(
            folder,
            folder / "model.sig",
            ModelVerifier.certificate_chain([mt / "keys" / "ca-cert.pem"]),
            ignore_paths=[Path("ignore-me")],
        )


def test_certificate_wrong_root_fail(mt, private_ca):
    folder = mt / "v1.1.0-certificate"
    with pytest.raises(SignatureError, match=r"model\.signature"):
        verify_model(
            folder,
            folder / "model.sig",
            ModelVerifier.certificate_chain([private_ca["root"]]),
            ignore_paths=[Path("ignore-me")],
        )


def test_key_folder_verifies(mt):
    folder = mt / "v1.1.0-elliptic-key"
    identity = verify_model(
        folder,
        folder / "model.sig",
        ModelVerifier.public_key(mt / "keys" / "signing-key-pub.pem"),
        ignore_paths=[Path("ignore-me")],
    )
    assert identity.method == "key"
    assert identity.signer == identity.signer_fingerprint
    assert identity.signer.startswith("sha256:") and len(identity.signer) == 7 + 64
    assert (
        identity.root_digest == "92745110b1ab4368471cbe31664e10174e954b113a3df333db860317b2c6dec4"
    )


def test_key_one_byte_change_fail(mt, tmp_path, writable_copy, flip_byte):
    folder = writable_copy(mt / "v1.1.0-elliptic-key", tmp_path / "key")
    flip_byte(folder / "signme-1", 7)
    with pytest.raises(SignatureError, match=r"model\.file_changed\[signme-1\]"):
        verify_model(
            folder,
            folder / "model.sig",
            ModelVerifier.public_key(mt / "keys" / "signing-key-pub.pem"),
            ignore_paths=[Path("ignore-me")],
        )


def test_key_wrong_key_fail(mt, keypair):
    folder = mt / "v1.1.0-elliptic-key"
    with pytest.raises(SignatureError, match="Key mismatch"):
        verify_model(
            folder,
            folder / "model.sig",
            ModelVerifier.public_key(keypair[1]),
            ignore_paths=[Path("ignore-me")],
        )


def test_method_mismatch_fail(mt):
    """A Sigstore bundle offered to a key verifier is refused before any crypto."""
    folder = mt / "v1.1.0-sigstore"
    with pytest.raises(SignatureError, match=r"model\.signature\.kind") as caught:
        verify_model(
            folder,
            folder / "model.sig",
            ModelVerifier.public_key(mt / "keys" / "signing-key-pub.pem"),
            ignore_paths=[Path("ignore-me")],
        )
    assert (caught.value.expected, caught.value.actual) == ("key", "sigstore")


def test_missing_signed_file_fail(mt, trust_roots, tmp_path, writable_copy):
    folder = writable_copy(mt / "v1.1.0-sigstore", tmp_path / "m")
    (folder / "signme-2").unlink()
    with pytest.raises(SignatureError, match=r"model\.file_missing\[signme-2\]"):
        verify_model(
            folder, folder / "model.sig", _sigstore(trust_roots), ignore_paths=_ignore(folder)
        )
