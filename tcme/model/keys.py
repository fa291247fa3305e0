"""Signing keys for models: generation, loading and fingerprints.

A model signer key is an elliptic-curve key on one of the curves the OpenSSF
model signing format accepts (P-256, P-384, P-521). The fingerprint we show
and bind is ``sha256:<hex of the SubjectPublicKeyInfo DER>``, the same
convention as an X.509 SPKI pin.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.errors import ParseError, UsageError

# Curves the OMS key and certificate signers accept (model_signing._signing.sign_ec_key).
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")

PRIVATE_KEY_NAME = "signing-key.pem"
PUBLIC_KEY_NAME = "signing-key.pub.pem"


def read_limited(path: Path, what: str, limit: int = 1 << 20) -> bytes:
    """Read a small input file, or raise UsageError naming it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise UsageError(what, f"cannot read {path}: {err.strerror or err}") from err
    if len(data) > limit:
        raise UsageError(what, f"{path} is larger than {limit} bytes")
    return data


def load_public_key(
    pem: bytes, what: str = "model.verifier.public_key"
) -> ec.EllipticCurvePublicKey:
    """Parse a PEM public key and require a supported EC curve."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as err:
        raise ParseError(what, f"not a PEM public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ParseError(
            what,
            "model signing keys are elliptic-curve keys",
            expected="EC",
            actual=type(key).__name__,
        )
    if key.curve.name not in SUPPORTED_CURVES:
        raise ParseError(
            what, "unsupported curve", expected="|".join(SUPPORTED_CURVES), actual=key.curve.name
        )
    return key


def spki_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo DER."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def generate_signing_key(out_dir: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a fresh EC P-256 key pair as ``signing-key.pem`` / ``signing-key.pub.pem``.

    The private key file is created with mode 0600 and never overwritten
    unless ``force``. Returns (private key path, public key path).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / PRIVATE_KEY_NAME
    public_path = out_dir / PUBLIC_KEY_NAME
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise UsageError("model.keygen", f"{path} exists (use --force to replace it)")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path
