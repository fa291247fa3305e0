"""Reading evidence, certificates and CRLs from files a person named (size-bounded).

A file that cannot be read, is a directory, or is absurdly large is a
``UsageError`` naming the file: the caller's input, never a rejection of evidence.
"""

from __future__ import annotations

from pathlib import Path

from attestation.errors import ParseError, UsageError

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
MAX_INPUT_BYTES = 16 * 1024 * 1024  # evidence, certificates and CRLs are all far smaller


def read_input(path: Path, what: str) -> bytes:
    """A file's bytes; ``UsageError`` when unreadable, a directory or too large."""
    try:
        if path.is_dir():
            raise UsageError(f"{what}.file", f"{path} is a directory, expected a file")
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise UsageError(
                f"{what}.file",
                f"{path} is too large",
                expected=f"<= {MAX_INPUT_BYTES} bytes",
                actual=size,
            )
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"{what}.file", f"cannot read {path}: {err.strerror}") from err


def read_certs(path: Path) -> bytes:
    """Certificates as PEM from a file (PEM or DER) or every certificate file in a directory.

    In a directory, files ending .pem/.crt/.cer/.der are read; PEM CERTIFICATE
    blocks are taken, other PEM blocks (private keys, CRLs) and non-certificate
    DER files are skipped. Subdirectories are not searched.
    """
    if not path.is_dir():
        return read_input(path, "certs")
    from cryptography.hazmat.primitives.serialization import Encoding

    from attestation.snp import _x509

    pem: list[bytes] = []
    for entry in sorted(path.iterdir()):
        if not entry.is_file() or entry.suffix.lower() not in CERT_SUFFIXES:
            continue
        data = read_input(entry, "certs")
        try:
            for der in _x509.split_certificates(data):
                pem.append(_x509.load_certificate_der(der).public_bytes(Encoding.PEM))
        except ParseError:
            continue  # not a certificate (a CRL, a key): not ours to use
    if not pem:
        raise UsageError(
            "certs.dir",
            f"no certificates found in {path}",
            expected="*.pem/*.der with the VCEK/VLEK",
        )
    return b"".join(pem)
