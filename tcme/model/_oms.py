"""The one module that touches model-signing internals.

``model-signing`` (pinned to 1.1.1 in pyproject.toml) does the cryptography:
it reads Sigstore bundles, verifies key, certificate and Sigstore signatures,
turns the signed in-toto statement into a manifest, and signs payloads. Its
public ``verifying.Config.verify`` returns nothing and hashes the model
itself, so to get the signed statement back (for the root digest and the
serialization the signer declared) and to hash exactly the bytes we load, we
call one level lower: the ``_signing`` verifier and signer classes and
``_verify_signed_content``. Everything else in ``tcme.model`` goes through
this module, so an upgrade of model-signing is checked here and in the tests
that run the official CLI against our bundles and ours against its bundles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization as crypto_serialization
from model_signing import manifest as oms_manifest

# model-signing 1.1 exposes no public API for the manifest, the statement and the
# signing backends below; the version is pinned and the interop tests cover it.
from model_signing._hashing import hashing as oms_hashing  # noqa: PLC2701
from model_signing._signing import (  # noqa: PLC2701
    sign_certificate,
    sign_ec_key,
    sign_sigstore,
    sign_sigstore_pb,
)
from model_signing._signing import signing as oms_signing  # noqa: PLC2701

from attestation.errors import ParseError, PolicyError, SignatureError, foreign_error_line

from .identity import ModelVerifier
from .keys import load_public_key, spki_fingerprint
from .memfd import sealed_bytes_path

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

# A signature is a small JSON document; refuse anything absurd before parsing it.
MAX_BUNDLE_BYTES = 16 << 20


@dataclass(frozen=True)
class SignedStatement:
    """The content of a signature whose cryptography checked out."""

    subject_name: str
    root_digest: str
    serialization: dict[str, Any]
    resources: dict[str, tuple[str, str]]
    """OMS resource name -> (algorithm, hex digest)."""
    signer: str
    issuer: str | None
    signer_fingerprint: str


@dataclass(frozen=True)
class ParsedBundle:
    """A signature file parsed for the verifier's method (no crypto checked yet)."""

    kind: str
    signature: sign_sigstore.Signature | sign_sigstore_pb.Signature


def bundle_kind(document: dict[str, Any]) -> str:
    """Which signing method made this bundle: ``key``, ``certificate`` or ``sigstore``."""
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise ParseError("model.signature.parse", "bundle has no verificationMaterial")
    if "publicKey" in material:
        return "key"
    if "certificate" in material:
        return "sigstore"
    if "x509CertificateChain" in material:
        # Old Sigstore bundles carry a chain too, but always with a transparency log entry;
        # OMS certificate signatures never have one.
        return "sigstore" if material.get("tlogEntries") else "certificate"
    raise ParseError("model.signature.parse", "bundle names no key, certificate or chain")


def parse_bundle(data: bytes, method: str, source: str) -> ParsedBundle:
    """Parse signature bytes for ``method``; ParseError/SignatureError for a bad or foreign one."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise ParseError(
            "model.signature.parse", f"{source} is larger than {MAX_BUNDLE_BYTES} bytes"
        )
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParseError("model.signature.parse", f"{source} is not JSON: {err}") from err
    if not isinstance(document, dict):
        raise ParseError("model.signature.parse", f"{source} is not a JSON object")
    if "dsseEnvelope" not in document:
        raise ParseError(
            "model.signature.parse",
            f"{source} has no DSSE envelope (OMS signatures sign an in-toto statement)",
        )
    kind = bundle_kind(document)
    if kind != method:
        raise SignatureError(
            "model.signature.kind",
            f"{source} was made with a different signing method than the verifier trusts",
            expected=method,
            actual=kind,
        )
    reader = sign_sigstore.Signature if method == "sigstore" else sign_sigstore_pb.Signature
    try:
        with sealed_bytes_path(data, "tcme-signature") as path:
            signature = reader.read(path)
    except Exception as err:  # pydantic / protobuf / sigstore parse errors
        raise ParseError("model.signature.parse", f"{source}: {foreign_error_line(err)}") from err
    return ParsedBundle(kind=kind, signature=signature)


@contextlib.contextmanager
def _library_verifier(verifier: ModelVerifier) -> Iterator[oms_signing.Verifier]:
    """Build model-signing's verifier from in-memory trust (paths are sealed memfds)."""
    if verifier.method == "key":
        assert verifier.public_key_pem is not None
        with sealed_bytes_path(verifier.public_key_pem, "tcme-public-key") as path:
            yield sign_ec_key.Verifier(path)
    elif verifier.method == "certificate":
        chain = b"\n".join(verifier.certificate_chain_pem)
        with sealed_bytes_path(chain, "tcme-ca-chain") as path:
            yield sign_certificate.Verifier([path], log_fingerprints=False)
    else:
        assert verifier.trust_config_json is not None
        assert verifier.identity is not None and verifier.issuer is not None
        with sealed_bytes_path(verifier.trust_config_json, "tcme-trust-config") as path:
            # trust_config is always given, so model-signing never reaches for TUF.
            yield sign_sigstore.Verifier(
                identity=verifier.identity,
                oidc_issuer=verifier.issuer,
                use_staging=False,
                trust_config=path,
            )


def verify_bundle(parsed: ParsedBundle, verifier: ModelVerifier, source: str) -> SignedStatement:
    """Check the bundle's signature under ``verifier`` and return the signed statement.

    Raises SignatureError when the signature, chain, identity or transparency
    proof does not verify, ParseError / PolicyError when the signed statement
    is not an OMS v1.0 model signature.
    """
    try:
        with _library_verifier(verifier) as library_verifier:
            payload_type, payload = library_verifier._verify_signed_content(  # noqa: SLF001
                parsed.signature
            )
    except Exception as err:  # every library failure here means "does not verify"
        raise SignatureError(
            "model.signature",
            f"{source} does not verify against {verifier.describe()}: {foreign_error_line(err)}",
        ) from err
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise PolicyError(
            "model.signature.payload_type", expected=IN_TOTO_PAYLOAD_TYPE, actual=payload_type
        )
    statement = _load_statement(payload)
    signer, issuer, fingerprint = _signer_of(parsed, verifier)
    return SignedStatement(
        subject_name=statement["subject"][0]["name"],
        root_digest=statement["subject"][0]["digest"]["sha256"],
        serialization=dict(statement["predicate"]["serialization"]),
        resources=_resources(statement),
        signer=signer,
        issuer=issuer,
        signer_fingerprint=fingerprint,
    )


def _load_statement(payload: bytes | str) -> dict[str, Any]:
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParseError("model.statement", f"signed payload is not JSON: {err}") from err
    if not isinstance(statement, dict):
        raise ParseError("model.statement", "signed payload is not a JSON object")
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise PolicyError(
            "model.statement.type", expected=IN_TOTO_STATEMENT_TYPE, actual=statement.get("_type")
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise PolicyError(
            "model.statement.predicate_type",
            "only the OMS v1.0 predicate is accepted",
            expected=PREDICATE_TYPE,
            actual=statement.get("predicateType"),
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise ParseError("model.statement.subject", "expected exactly one subject")
    digest = subjects[0].get("digest") if isinstance(subjects[0], dict) else None
    if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
        raise ParseError("model.statement.subject", "subject has no sha256 digest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or not isinstance(predicate.get("serialization"), dict):
        raise ParseError("model.statement.predicate", "predicate has no serialization")
    try:
        # model-signing's own reader: checks the subject digest against the resources.
        oms_signing.dsse_payload_to_manifest(statement)
    except (KeyError, TypeError, ValueError) as err:
        raise SignatureError("model.statement.root_digest", foreign_error_line(err)) from err
    return statement


def _resources(statement: dict[str, Any]) -> dict[str, tuple[str, str]]:
    resources: dict[str, tuple[str, str]] = {}
    for resource in statement["predicate"]["resources"]:
        name = str(resource["name"])
        if name in resources:
            raise ParseError("model.statement.resources", f"resource {name!r} is listed twice")
        resources[name] = (str(resource["algorithm"]), str(resource["digest"]).lower())
    return resources


def _signer_of(parsed: ParsedBundle, verifier: ModelVerifier) -> tuple[str, str | None, str]:
    if verifier.method == "key":
        assert verifier.public_key_pem is not None
        fingerprint = spki_fingerprint(load_public_key(verifier.public_key_pem))
        return fingerprint, None, fingerprint
    signature = parsed.signature
    if verifier.method == "certificate":
        # parse_bundle reads certificate bundles as sigstore_pb signatures with a chain.
        chain = (
            signature.bundle.verification_material.x509_certificate_chain
            if isinstance(signature, sign_sigstore_pb.Signature)
            else None
        )
        if chain is None or not chain.certificates:
            raise SignatureError("model.signature.chain", "the bundle carries no certificate")
        leaf = x509.load_der_x509_certificate(chain.certificates[0].raw_bytes)
        return certificate_signer(leaf), None, _cert_fingerprint(leaf)
    if not isinstance(signature, sign_sigstore.Signature):  # parse_bundle's sigstore reader
        raise SignatureError("model.signature.kind", "not a Sigstore bundle", actual=parsed.kind)
    leaf = signature.bundle.signing_certificate
    assert verifier.identity is not None
    return verifier.identity, verifier.issuer, _cert_fingerprint(leaf)


def certificate_signer(certificate: x509.Certificate) -> str:
    """The first SAN (email, URI, DNS) of a signing certificate, else its RFC 4514 subject."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            values = san.get_values_for_type(kind)
            if values:
                return str(values[0])
    return certificate.subject.rfc4514_string()


def _cert_fingerprint(certificate: x509.Certificate) -> str:
    der = certificate.public_bytes(crypto_serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


# --- signing ---------------------------------------------------------------------------------


def build_manifest(
    model_name: str,
    serialization: dict[str, Any],
    resources: Sequence[tuple[str, str, bytes]],
) -> oms_manifest.Manifest:
    """An OMS manifest from (resource name, algorithm, digest) triples."""
    kind = oms_manifest.SerializationType.from_args(serialization)
    items = [
        kind.new_item(name, oms_hashing.Digest(algorithm, digest))
        for name, algorithm, digest in resources
    ]
    return oms_manifest.Manifest(model_name, items, kind)


def sign_manifest(manifest: oms_manifest.Manifest, signer: oms_signing.Signer) -> str:
    """Sign the in-toto statement for ``manifest``; returns the bundle JSON."""
    signature = signer.sign(oms_signing.Payload(manifest))
    if not isinstance(signature, sign_sigstore.Signature | sign_sigstore_pb.Signature):
        raise SignatureError(
            "model.sign", f"the signer made an unknown signature type {type(signature).__name__}"
        )
    return signature.bundle.to_json()


def key_signer(private_key: Path) -> oms_signing.Signer:
    """EC private key signer (PEM, unencrypted)."""
    return sign_ec_key.Signer(private_key)


def certificate_signer_for(
    private_key: Path, certificate: Path, chain: Sequence[Path]
) -> oms_signing.Signer:
    """Signer that embeds the signing certificate and its chain in the bundle."""
    return sign_certificate.Signer(private_key, certificate, list(chain))


def sigstore_signer(
    *,
    identity_token: str | None,
    trust_config: Path | None,
    use_staging: bool,
    force_oob: bool,
) -> oms_signing.Signer:
    """Sigstore keyless signer (needs the network: Fulcio, Rekor, OIDC)."""
    return sign_sigstore.Signer(
        identity_token=identity_token,
        trust_config=trust_config,
        use_staging=use_staging,
        force_oob=force_oob,
        use_ambient_credentials=True,
    )
