"""Sign a model in the OpenSSF model signing format (v1.0 predicate).

The model is hashed here (so long work shows progress and can use every
core); model-signing builds the in-toto statement from that manifest and
signs it with a private key, a signing certificate, or Sigstore keyless.
The bundle is written atomically: a reader never sees half a signature.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from attestation.errors import TcmeError, UnreachableError, UsageError, foreign_error_line

from . import _oms
from .digest import MIN_SHARD_SIZE, Serialization, hash_model
from .keys import read_limited
from .layout import ModelLayout
from .progress import Progress


def sign_model(
    model: Path,
    signature: Path,
    *,
    private_key: Path | None = None,
    certificate_chain: Sequence[Path] | None = None,
    signing_certificate: Path | None = None,
    sigstore: bool = False,
    ignore_paths: Sequence[Path] = (),
    allow_symlinks: bool = False,
    shard_size: int | None = None,
    identity_token: str | None = None,
    trust_config: Path | None = None,
    use_staging: bool = False,
    quiet: bool = True,
    ignore_git_paths: bool = True,
) -> None:
    """Sign ``model`` (file or directory) and write the bundle to ``signature``.

    Exactly one method: ``private_key`` alone (key); ``private_key`` with
    ``signing_certificate`` and optional ``certificate_chain`` (certificate);
    or ``sigstore=True`` (keyless, needs the network and an OIDC identity).
    ``shard_size`` selects shard serialization (parallel hashing; note that
    the official ``model_signing`` CLI verifies only file serialization).
    Git metadata is left out unless ``ignore_git_paths`` is False, as the
    official tool does.
    """
    signer = _choose_signer(
        private_key=private_key,
        signing_certificate=signing_certificate,
        certificate_chain=certificate_chain,
        sigstore=sigstore,
        identity_token=identity_token,
        trust_config=trust_config,
        use_staging=use_staging,
    )
    if shard_size is not None and shard_size < MIN_SHARD_SIZE:
        raise UsageError("model.shard_size", expected=f">= {MIN_SHARD_SIZE}", actual=shard_size)
    serialization = (
        Serialization("shards", shard_size=shard_size)
        if shard_size is not None
        else Serialization("files")
    )
    layout = ModelLayout.resolve(
        model, signature=signature, ignore_paths=ignore_paths, ignore_git_paths=ignore_git_paths
    )
    files = layout.files(allow_symlinks=allow_symlinks)
    if not files:
        raise UsageError("model.path", f"{model} contains no file to sign")
    try:
        total = sum(f.path.stat().st_size for f in files)
        progress = Progress.for_terminal(f"signing {layout.name}", total, quiet=quiet)
        hashed = hash_model(files, serialization, progress=progress)
    except OSError as err:
        raise UsageError(
            "model.read", f"cannot read {err.filename or layout.root}: {err.strerror or err}"
        ) from err
    params = serialization.params(
        allow_symlinks=allow_symlinks, ignore_paths=layout.recorded_ignores()
    )
    manifest = _oms.build_manifest(
        layout.name,
        params,
        [
            (name, algorithm, bytes.fromhex(digest))
            for name, (algorithm, digest) in sorted(hashed.resources.items())
        ],
    )
    try:
        bundle_json = _oms.sign_manifest(manifest, signer)
    except Exception as err:  # network, OIDC or key errors from the library
        raise _library_failure(err, "signing failed: ") from err
    _write_atomically(signature, bundle_json.encode())


def _choose_signer(
    *,
    private_key: Path | None,
    signing_certificate: Path | None,
    certificate_chain: Sequence[Path] | None,
    sigstore: bool,
    identity_token: str | None,
    trust_config: Path | None,
    use_staging: bool,
) -> _oms.oms_signing.Signer:
    if sigstore:
        if private_key or signing_certificate or certificate_chain:
            raise UsageError("model.sign", "--sigstore signs keyless; do not also give keys")
        return _library_signer(
            lambda: _oms.sigstore_signer(
                identity_token=identity_token,
                trust_config=trust_config,
                use_staging=use_staging,
                force_oob=False,
            )
        )
    if private_key is None:
        raise UsageError(
            "model.sign", "choose a method: --key, --certificate with --key, or --sigstore"
        )
    read_limited(private_key, "model.sign.key")  # a clear error for a missing key file
    if signing_certificate is not None:
        chain = list(certificate_chain or ())
        return _library_signer(
            lambda: _oms.certificate_signer_for(private_key, signing_certificate, chain)
        )
    if certificate_chain:
        raise UsageError("model.sign", "--certificate-chain needs --certificate")
    return _library_signer(lambda: _oms.key_signer(private_key))


def _library_signer(build: Callable[[], _oms.oms_signing.Signer]) -> _oms.oms_signing.Signer:
    try:
        return build()
    except TcmeError:
        raise
    except Exception as err:  # unreadable or unsupported key, cert/key mismatch, no OIDC issuer
        raise _library_failure(err, "") from err


def _library_failure(err: Exception, prefix: str) -> TcmeError:
    """A model-signing/sigstore failure by category: a service out of reach is not bad input.

    Sigstore keyless signing talks to the OIDC issuer, Fulcio, Rekor and a TSA;
    when one cannot be reached the command exits 3 (``tcme.cli.exitcodes``).
    """
    import requests
    from sigstore.errors import NetworkError

    network = (NetworkError, requests.ConnectionError, requests.Timeout, ConnectionError)
    if isinstance(err, network) or isinstance(err.__cause__, network):
        cause = err.__cause__ or err
        return UnreachableError(
            "model.sign",
            "cannot reach a Sigstore service (OIDC issuer, Fulcio, Rekor or TSA)",
            actual=type(cause).__name__,
        )
    return UsageError("model.sign", f"{prefix}{foreign_error_line(err)}")


def _write_atomically(path: Path, data: bytes) -> None:
    directory = path.absolute().parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
