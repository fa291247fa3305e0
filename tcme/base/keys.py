"""The HPKE suite and the keys parties and the enclave hold.

Suite (RFC 9180 base mode, single shot): KEM ML-KEM-768+X25519 (hybrid),
KDF HKDF-SHA256, AEAD AES-256-GCM.

Why this suite: party inputs cross an untrusted host that can record
ciphertext today and try to open it later ("harvest now, decrypt later"), so
the KEM is the post-quantum hybrid: it stays secure while either ML-KEM-768
or X25519 does. HKDF-SHA256 is the KDF the hybrid KEM is specified with.
AES-256-GCM keeps a 256-bit key (Grover halves it) and every SEV-SNP/TDX host
CPU has AES-NI; single-shot HPKE derives a fresh key per message, so GCM's
nonce-reuse hazard does not arise.

Hybrid public key bytes = ML-KEM-768 encapsulation key (1184) || X25519 (32).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from attestation.errors import ParseError, UsageError
from tcme.base.encoding import b64, unb64

HPKE_SUITE_NAME = "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"
SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
ENC_SIZE = hpke.KEM.MLKEM768_X25519.enc_length()  # 1120
MLKEM768_PUBLIC_SIZE = 1184
X25519_SIZE = 32
HPKE_PUBLIC_SIZE = MLKEM768_PUBLIC_SIZE + X25519_SIZE
ED25519_PUBLIC_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
SIGNING_ALGORITHM = "ed25519"

_MLKEM_SEED_SIZE = 64


class OpenError(Exception):
    """HPKE open failed (wrong key, wrong info, or altered ciphertext)."""


@dataclass(frozen=True)
class HpkePublicKey:
    """A hybrid HPKE public key with its wire bytes."""

    raw: bytes
    key: hpke.MLKEM768X25519PublicKey

    @classmethod
    def from_bytes(cls, raw: bytes, check: str = "hpke.public_key") -> HpkePublicKey:
        """Parse 1216 bytes (ML-KEM-768 || X25519); raises ParseError."""
        if len(raw) != HPKE_PUBLIC_SIZE:
            raise ParseError(
                check, "wrong length", expected=f"{HPKE_PUBLIC_SIZE} bytes", actual=len(raw)
            )
        try:
            key = hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_SIZE]),
                x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_SIZE:]),
            )
        except ValueError as err:
            raise ParseError(check, f"not a valid ML-KEM-768+X25519 key: {err}") from err
        return cls(raw=bytes(raw), key=key)


@dataclass(frozen=True)
class HpkePrivateKey:
    """A hybrid HPKE private key (ML-KEM-768 seed + X25519), held in memory."""

    key: hpke.MLKEM768X25519PrivateKey = field(repr=False)
    public: HpkePublicKey
    # 64-byte ML-KEM seed || 32-byte X25519 scalar; only for PartyKeys.save, never shown.
    _seed: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> HpkePrivateKey:
        """A fresh random key pair."""
        return cls.from_seed(os.urandom(_MLKEM_SEED_SIZE) + os.urandom(X25519_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> HpkePrivateKey:
        """Rebuild from the 96-byte seed written by ``PartyKeys.save``."""
        if len(seed) != _MLKEM_SEED_SIZE + X25519_SIZE:
            raise ParseError("hpke.private_key", "wrong seed length", actual=len(seed))
        kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed[:_MLKEM_SEED_SIZE])
        dh = x25519.X25519PrivateKey.from_private_bytes(seed[_MLKEM_SEED_SIZE:])
        raw = kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()
        return cls(
            key=hpke.MLKEM768X25519PrivateKey(kem, dh),
            public=HpkePublicKey.from_bytes(raw),
            _seed=bytes(seed),
        )


def hpke_seal(public: HpkePublicKey, plaintext: bytes, info: bytes) -> tuple[bytes, bytes]:
    """HPKE base-mode single-shot seal; returns ``(enc, ciphertext)``."""
    sealed = SUITE.encrypt(plaintext, public.key, info=info)
    return sealed[:ENC_SIZE], sealed[ENC_SIZE:]


def hpke_open(private: HpkePrivateKey, enc: bytes, ciphertext: bytes, info: bytes) -> bytes:
    """Open what ``hpke_seal`` made; raises ``OpenError`` on any failure."""
    if len(enc) != ENC_SIZE:
        raise OpenError(f"enc must be {ENC_SIZE} bytes, got {len(enc)}")
    try:
        return SUITE.decrypt(enc + ciphertext, private.key, info=info)
    except (InvalidTag, ValueError) as err:
        raise OpenError("HPKE open failed (wrong key, wrong binding, or altered bytes)") from err


def ed25519_public(raw: bytes, check: str) -> ed25519.Ed25519PublicKey:
    """Parse a raw 32-byte Ed25519 public key; raises ParseError."""
    if len(raw) != ED25519_PUBLIC_SIZE:
        raise ParseError(check, "wrong length", expected=ED25519_PUBLIC_SIZE, actual=len(raw))
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def ed25519_public_bytes(key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey) -> bytes:
    """Raw 32 bytes of an Ed25519 public key (or of a private key's public half)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes_raw()


@dataclass(frozen=True)
class PartyKeys:
    """One party's keys: Ed25519 to sign inputs and requests, HPKE to receive outputs.

    Both public halves go into the contract (``public_entry``).
    """

    signing_key: ed25519.Ed25519PrivateKey
    hpke_key: HpkePrivateKey

    @classmethod
    def generate(cls) -> PartyKeys:
        """Fresh random keys."""
        return cls(ed25519.Ed25519PrivateKey.generate(), HpkePrivateKey.generate())

    def public_entry(self, name: str) -> dict[str, Any]:
        """The contract ``parties[]`` entry for this party."""
        return {
            "name": name,
            "signing_key": b64(ed25519_public_bytes(self.signing_key)),
            "hpke_key": b64(self.hpke_key.public.raw),
        }

    def save(self, path: Path) -> None:
        """Write the private keys as JSON, readable by the owner only (0600)."""
        body = {
            "type": "tcme/v1/party-keys",
            "signing_key": b64(self.signing_key.private_bytes_raw()),
            # The hpke package keeps the seed private and offers no export of it.
            "hpke_seed": b64(self.hpke_key._seed),  # noqa: SLF001
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle)
            handle.write("\n")

    @classmethod
    def load(cls, path: Path) -> PartyKeys:
        """Read keys written by ``save``; raises UsageError/ParseError."""
        try:
            body = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise UsageError("party_keys.read", f"cannot read {path}: {err.strerror}") from err
        except ValueError as err:
            raise ParseError("party_keys.json", f"{path}: {err}") from err
        if not isinstance(body, dict) or body.get("type") != "tcme/v1/party-keys":
            raise ParseError("party_keys.type", f"{path} is not a tcme party key file")
        signing = unb64(body.get("signing_key"), "party_keys.signing_key", size=32)
        seed = unb64(body.get("hpke_seed"), "party_keys.hpke_seed", size=96)
        return cls(
            ed25519.Ed25519PrivateKey.from_private_bytes(signing), HpkePrivateKey.from_seed(seed)
        )
