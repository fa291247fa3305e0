"""What a verified model is, and whom a model verifier trusts.

:class:`ModelIdentity` is the typed result of a successful verification: the
only place the model's root digest and signer come from. :class:`ModelVerifier`
holds the trust a verifier brings (a public key, a certificate chain, or a
Sigstore identity with its trust root), read once into memory when built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cryptography import x509

from attestation.errors import ParseError, UsageError

from .keys import load_public_key, read_limited, spki_fingerprint
from .trust import embedded_public_good_trust_config, load_trust_config

Method = Literal["key", "certificate", "sigstore"]


@dataclass(frozen=True)
class ModelIdentity:
    """A model whose signature and every signed file checked out.

    ``files`` maps each OMS resource name to its hex digest: the path relative
    to the model directory, ``.`` when the model is a single file, and
    ``path:start:end`` per shard for shard serialization.
    """

    root_digest: str
    """Hex SHA-256 subject digest of the in-toto statement (over all resource digests)."""
    files: Mapping[str, str]
    """Resource name -> hex digest, as signed (and as recomputed)."""
    signer: str
    """Key fingerprint ``sha256:<hex SPKI DER>``, certificate SAN/subject, or Sigstore identity."""
    issuer: str | None
    """OIDC issuer for Sigstore, else None."""
    method: str
    """``key`` | ``certificate`` | ``sigstore``."""
    hash_algorithm: str
    """Per-resource hash, e.g. ``sha256``."""
    serialization: str = "files"
    """OMS serialization method: ``files`` or ``shards``."""
    shard_size: int | None = None
    """Shard size in bytes for ``shards``, else None."""
    model_name: str = ""
    """The statement's subject name (informative only; renaming a model keeps it valid)."""
    signer_fingerprint: str = ""
    """``sha256:<hex>`` of the signer key (key) or leaf certificate DER (certificate, sigstore)."""
    accepted_ignore_paths: Mapping[str, str] = field(default_factory=dict)
    """Ignore paths the signature records beyond the verifier's own, each with why it hides
    nothing (e.g. ``model.sig`` when the signature is kept outside the model)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items()))))
        object.__setattr__(
            self,
            "accepted_ignore_paths",
            MappingProxyType(dict(sorted(self.accepted_ignore_paths.items()))),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (used by ``tcme model verify --json``)."""
        return {
            "root_digest": self.root_digest,
            "hash_algorithm": self.hash_algorithm,
            "serialization": self.serialization,
            "shard_size": self.shard_size,
            "method": self.method,
            "signer": self.signer,
            "issuer": self.issuer,
            "signer_fingerprint": self.signer_fingerprint,
            "model_name": self.model_name,
            "files": dict(self.files),
            "accepted_ignore_paths": dict(self.accepted_ignore_paths),
        }


@dataclass(frozen=True)
class ModelVerifier:
    """The trust a model verifier brings. Build it with the classmethods.

    Key material and trust roots are read into memory once, here, so the
    bytes checked later are exactly the bytes named now.
    """

    method: Method
    public_key_pem: bytes | None = None
    certificate_chain_pem: tuple[bytes, ...] = ()
    identity: str | None = None
    issuer: str | None = None
    trust_config_json: bytes | None = field(default=None, repr=False)
    trust_source: str = ""

    @classmethod
    def public_key(cls, pem: Path) -> ModelVerifier:
        """Trust signatures made by the private half of this EC public key (PEM)."""
        data = read_limited(pem, "model.verifier.public_key")
        load_public_key(data)
        return cls(method="key", public_key_pem=data, trust_source=str(pem))

    @classmethod
    def certificate_chain(cls, pems: Sequence[Path]) -> ModelVerifier:
        """Trust signing certificates that chain to these CA certificates (PEM files).

        At least one certificate is required: an empty chain would make the
        underlying library fall back to the web PKI, which we never want.
        """
        if not pems:
            raise UsageError(
                "model.verifier.certificate_chain", "name at least one trusted CA certificate"
            )
        chain: list[bytes] = []
        for path in pems:
            data = read_limited(path, "model.verifier.certificate_chain")
            try:
                certificates = x509.load_pem_x509_certificates(data)
            except ValueError as err:
                raise ParseError(
                    "model.verifier.certificate_chain", f"{path}: not PEM certificates: {err}"
                ) from err
            if not certificates:
                raise ParseError("model.verifier.certificate_chain", f"{path}: no certificate")
            chain.append(data)
        return cls(
            method="certificate",
            certificate_chain_pem=tuple(chain),
            trust_source=", ".join(str(p) for p in pems),
        )

    @classmethod
    def sigstore(cls, identity: str, issuer: str, trust_config: Path | None) -> ModelVerifier:
        """Trust Sigstore keyless signatures by ``identity`` as vouched for by ``issuer``.

        ``trust_config`` is a ClientTrustConfig JSON or a bare trusted_root.json;
        None means the public-good root embedded in the installed sigstore
        package. Either way verification is offline.
        """
        if not identity:
            raise UsageError("model.verifier.identity", "the expected signer identity is empty")
        if not issuer:
            raise UsageError("model.verifier.issuer", "the expected OIDC issuer is empty")
        if trust_config is None:
            config = embedded_public_good_trust_config()
            source = "sigstore public-good (embedded in the sigstore package)"
        else:
            config = load_trust_config(trust_config)
            source = str(trust_config)
        return cls(
            method="sigstore",
            identity=identity,
            issuer=issuer,
            trust_config_json=config,
            trust_source=source,
        )

    def describe(self) -> str:
        """One line for messages: what this verifier trusts."""
        if self.method == "key":
            assert self.public_key_pem is not None
            return f"public key {spki_fingerprint(load_public_key(self.public_key_pem))}"
        if self.method == "certificate":
            return f"certificate chain from {self.trust_source}"
        return (
            f"sigstore identity {self.identity} (issuer {self.issuer}; trust {self.trust_source})"
        )
