"""The enclave's keys: made at start, in memory only, gone when the process ends.

- an HPKE key pair (ML-KEM-768+X25519, tcme.base.keys) parties seal inputs to;
- an Ed25519 key that signs receipts.

Neither is ever written anywhere or exported; only the public halves leave,
inside the claims that every report binds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519

from tcme.base.keys import HpkePrivateKey


@dataclass(frozen=True)
class EnclaveKeys:
    """The enclave's private keys (``repr`` shows only public fingerprints)."""

    hpke: HpkePrivateKey = field(repr=False)
    signing: ed25519.Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> EnclaveKeys:
        """Fresh keys from the OS CSPRNG."""
        return cls(hpke=HpkePrivateKey.generate(), signing=ed25519.Ed25519PrivateKey.generate())

    @property
    def hpke_public(self) -> bytes:
        """Wire bytes of the HPKE public key (1216)."""
        return self.hpke.public.raw

    @property
    def signing_public(self) -> bytes:
        """Raw Ed25519 public key (32)."""
        return self.signing.public_key().public_bytes_raw()
