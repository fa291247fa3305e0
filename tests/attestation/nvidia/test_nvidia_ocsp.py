"""Cached OCSP answers for NVIDIA device chains (no real NVIDIA OCSP response exists offline).

A locally made P-384 chain stands in for NVIDIA's, so every answer can be made:
good, revoked, stale, missing, signed by the wrong key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from attestation.errors import SignatureError
from attestation.nvidia.chain import verify_chain
from attestation.nvidia.ocsp import check_ocsp, serial_key

NOW = datetime(2025, 10, 1, tzinfo=UTC)


def _cert(name, key, issuer_name, issuer_key, ca):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA384())
    )


@pytest.fixture(scope="module")
def chain():
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP384R1()),
    )
    root = _cert("Test NVIDIA-like Root", root_key, "Test NVIDIA-like Root", root_key, True)
    leaf = _cert("Test GPU leaf", leaf_key, "Test NVIDIA-like Root", root_key, False)
    verified = verify_chain([leaf, root], root=root, at=NOW, check="nvidia.chain")
    return verified, root_key


def _answer(
    leaf,
    root,
    key,
    status=ocsp.OCSPCertStatus.GOOD,
    this=NOW,
    nxt=NOW + timedelta(days=1),
    signer=None,
):
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf,
        issuer=root,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this,
        next_update=nxt,
        revocation_time=NOW if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer or root)
    if signer is not None:
        builder = builder.certificates([signer])
    return builder.sign(key, hashes.SHA384()).public_bytes(Encoding.DER)


def test_good_answer_passes(chain):
    verified, root_key = chain
    leaf, root = verified.certificates
    check_ocsp(verified, {serial_key(leaf): _answer(leaf, root, root_key)}, at=NOW)


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("missing", "nvidia.ocsp.missing"),
        ("revoked", "nvidia.ocsp.revoked"),
        ("stale", "nvidia.ocsp.stale"),
        ("wrong_signer", "nvidia.ocsp.responder"),
    ],
)
def test_bad_answers_fail(chain, case, check):
    verified, root_key = chain
    leaf, root = verified.certificates
    if case == "missing":
        answers = {}
    elif case == "revoked":
        answers = {serial_key(leaf): _answer(leaf, root, root_key, ocsp.OCSPCertStatus.REVOKED)}
    elif case == "stale":
        old = NOW - timedelta(days=10)
        answers = {
            serial_key(leaf): _answer(leaf, root, root_key, this=old, nxt=old + timedelta(days=1))
        }
    else:
        key = ec.generate_private_key(ec.SECP384R1())
        rogue = _cert("Rogue responder", key, "Rogue responder", key, False)
        answers = {serial_key(leaf): _answer(leaf, root, key, signer=rogue)}
    with pytest.raises(SignatureError) as err:
        check_ocsp(verified, answers, at=NOW)
    assert err.value.check == check


def test_not_required_tolerates_missing_and_stale_but_never_revoked(chain):
    verified, root_key = chain
    leaf, root = verified.certificates
    assert check_ocsp(verified, {}, at=NOW, require_fresh=False) is False
    old = NOW - timedelta(days=10)
    stale = {serial_key(leaf): _answer(leaf, root, root_key, this=old, nxt=old + timedelta(days=1))}
    assert check_ocsp(verified, stale, at=NOW, require_fresh=False) is False
    good = {serial_key(leaf): _answer(leaf, root, root_key)}
    assert check_ocsp(verified, good, at=NOW, require_fresh=False) is True
    revoked = {serial_key(leaf): _answer(leaf, root, root_key, ocsp.OCSPCertStatus.REVOKED)}
    with pytest.raises(SignatureError) as err:
        check_ocsp(verified, revoked, at=NOW, require_fresh=False)
    assert err.value.check == "nvidia.ocsp.revoked"


def test_required_ocsp_without_answers_rejects_real_gpu(named_gpu):
    from attestation.nvidia.verify import verify_device_evidence

    vector = named_gpu("trustee_gh100_550")
    with pytest.raises(SignatureError) as err:
        verify_device_evidence(vector.evidence, nonce=vector.nonce, at=NOW, require_ocsp=True)
    assert err.value.check == "nvidia.ocsp.missing"
