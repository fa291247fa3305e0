"""Sigstore trust material for offline verification.

Verification never refreshes trust over the network (no TUF): the trust
comes from a file the verifier names, or else from the public-good trusted
root shipped inside the installed ``sigstore`` package.

``--trust-config`` accepts either a Sigstore ``ClientTrustConfig`` JSON or a
bare ``trusted_root.json``. A bare root is wrapped into a ClientTrustConfig
with a *verify-only* signing config (no Fulcio, Rekor, TSA or OIDC services):
verification needs only the trusted root, and a config that names no services
cannot be mistaken for one that signs.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from attestation.errors import ParseError, foreign_error_line

from .keys import read_limited

CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.trustedroot"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

# Where sigstore-python keeps the embedded public-good trust (a URL-quoted folder name).
_EMBEDDED_PUBLIC_GOOD = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"

_TRUST_LIMIT = 4 << 20


def verify_only_signing_config() -> dict[str, Any]:
    """A schema-valid signing config that names no service (so nothing can sign with it)."""
    return {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [],
        "oidcUrls": [],
        "rekorTlogUrls": [],
        "tsaUrls": [],
    }


def normalise_trust_config(raw: bytes, source: str) -> bytes:
    """Return ClientTrustConfig JSON bytes for a ClientTrustConfig or a bare trusted root.

    Raises ParseError when the input is neither, or when sigstore rejects it.
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParseError("model.trust_config", f"{source} is not JSON: {err}") from err
    if not isinstance(document, dict):
        raise ParseError("model.trust_config", f"{source} is not a JSON object")
    media_type = str(document.get("mediaType", ""))
    if media_type == CLIENT_TRUST_CONFIG_MEDIA_TYPE:
        config = document
    elif media_type.startswith(TRUSTED_ROOT_MEDIA_TYPE_PREFIX):
        config = {
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": document,
            "signingConfig": verify_only_signing_config(),
        }
    else:
        raise ParseError(
            "model.trust_config",
            f"{source} is neither a Sigstore ClientTrustConfig nor a trusted root",
            expected=f"{CLIENT_TRUST_CONFIG_MEDIA_TYPE} or {TRUSTED_ROOT_MEDIA_TYPE_PREFIX}...",
            actual=media_type or "(no mediaType)",
        )
    encoded = json.dumps(config, sort_keys=True).encode()
    _check_with_sigstore(encoded, source)
    return encoded


def load_trust_config(path: Path) -> bytes:
    """Read ``path`` (ClientTrustConfig or bare trusted root) into ClientTrustConfig JSON."""
    return normalise_trust_config(read_limited(path, "model.trust_config", _TRUST_LIMIT), str(path))


def embedded_public_good_trust_config() -> bytes:
    """The Sigstore public-good trusted root as shipped in the installed sigstore package.

    Read from the package's own files, never from the writable TUF cache and
    never over the network. Keys rotated after that sigstore release are not
    trusted, so a newer bundle fails closed; pass ``--trust-config`` then.
    """
    folder = resources.files("sigstore") / "_store" / _EMBEDDED_PUBLIC_GOOD
    raw = (folder / "trusted_root.json").read_bytes()
    return normalise_trust_config(raw, "sigstore public-good trusted root (embedded)")


def _check_with_sigstore(config_json: bytes, source: str) -> None:
    # Parse exactly as the verifier will, so a bad file is a clear ParseError
    # here instead of a confusing verification failure later.
    from sigstore.models import ClientTrustConfig

    try:
        ClientTrustConfig.from_json(config_json.decode()).trusted_root  # noqa: B018 - validates
    except Exception as err:  # sigstore raises pydantic and its own errors here
        raise ParseError(
            "model.trust_config", f"{source} was rejected by sigstore: {foreign_error_line(err)}"
        ) from err
