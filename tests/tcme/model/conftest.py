"""Fixtures for model signing tests: vector folders, keys, a private CA, no network.

Every test here runs with outbound sockets blocked (``no_network`` is autouse):
Sigstore verification must work offline, from the trust root we pass.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any attempt to open a network connection from this process."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="session")
def mt(vectors: Path) -> Path:
    """``sigstore/model_transparency``: model folders signed by the official tool."""
    folder = vectors / "sigstore" / "model_transparency"
    if not folder.is_dir():
        pytest.skip(f"model signing vectors missing under {vectors}")
    return folder


@pytest.fixture(scope="session")
def trust_roots(vectors: Path) -> Path:
    """``sigstore/trust_roots`` (public-good and staging roots and signing configs)."""
    return vectors / "sigstore" / "trust_roots"


@pytest.fixture
def writable_copy():
    """``writable_copy(source, destination)``: copy a read-only vector folder, writable."""

    def copy(source: Path, destination: Path) -> Path:
        shutil.copytree(source, destination)
        for path in [destination, *destination.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        return destination

    return copy


@pytest.fixture
def flip_byte():
    """``flip_byte(path, offset)``: change one byte of a file in place."""

    def flip(path: Path, offset: int = 0) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    return flip


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh P-256 signing key pair (private PEM, public PEM)."""
    from tcme.model import generate_signing_key

    return generate_signing_key(tmp_path / "keys")


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A small directory model with a nested file."""
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (model / "config.json").write_text('{"layers": 2}')
    (model / "sub" / "tokenizer.txt").write_text("a b c")
    return model


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def private_ca(tmp_path: Path) -> dict[str, Path]:
    """A root CA, an intermediate and a code-signing leaf with its key (all PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    folder = tmp_path / "pki"
    folder.mkdir()

    def issue(subject, subject_key, issuer, issuer_key, *, ca, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer))
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        else:
            usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
        builder = builder.add_extension(usage, critical=True)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = issue("test root", root_key, "test root", root_key, ca=True)
    inter = issue("test intermediate", inter_key, "test root", root_key, ca=True)
    leaf = issue(
        "model publisher", leaf_key, "test intermediate", inter_key, ca=False, san="pub@example.org"
    )
    other_root_key = ec.generate_private_key(ec.SECP384R1())
    other_root = issue("other root", other_root_key, "other root", other_root_key, ca=True)
    key_path = folder / "leaf.key"
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "root": _write_pem(folder / "root.pem", root),
        "intermediate": _write_pem(folder / "intermediate.pem", inter),
        "leaf": _write_pem(folder / "leaf.pem", leaf),
        "key": key_path,
        "other_root": _write_pem(folder / "other-root.pem", other_root),
    }
