"""Verify a model against its OpenSSF model signing (OMS) signature.

Steps, each tagged in the code:

  (1) resolve the model and what the verifier allows to be unsigned;
  (2) parse the signature bundle for the verifier's method;
  (3) verify the signature cryptographically (key, certificate chain, or
      Sigstore identity + transparency proof against an offline trust root);
  (4) accept the signed serialization only if we support it (``files`` or
      ``shards``, SHA-256) and its ``ignore_paths`` stay within what the
      verifier allows;
  (5) hash the model on disk with that serialization (set explicitly, never
      guessed), capturing one file into a sealed memfd when a loader asks;
  (6) compare every resource: a changed, missing or extra file rejects.

The result is a :class:`ModelIdentity`. Nothing is returned unless all six
steps pass.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from attestation.errors import PolicyError, SignatureError, UsageError

from . import _oms
from .digest import MIN_SHARD_SIZE, SUPPORTED_HASHES, HashResult, Serialization, hash_model
from .identity import ModelIdentity, ModelVerifier
from .keys import read_limited
from .layout import ModelLayout
from .progress import Progress


@dataclass
class Verification:
    """A passed verification, plus the captured file when one was requested."""

    identity: ModelIdentity
    hashed: HashResult


def verify_model(
    model: Path,
    signature: Path,
    verifier: ModelVerifier,
    *,
    ignore_paths: Sequence[Path] = (),
    allow_symlinks: bool = False,
    quiet: bool = True,
    ignore_git_paths: bool = True,
) -> ModelIdentity:
    """Verify ``model`` (a file or a directory) against ``signature``.

    ``ignore_paths`` (relative to the model directory, or absolute inside it)
    may be left unsigned; so may the signature itself when it lies inside the
    model, and git metadata (unless ``ignore_git_paths`` is False).

    Raises SignatureError (signature, identity or a file does not match),
    PolicyError (a method, ignore path or symlink we do not accept),
    ParseError (malformed signature) or UsageError (bad paths).
    """
    result = verify_and_capture(
        model,
        signature,
        verifier,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        quiet=quiet,
        ignore_git_paths=ignore_git_paths,
    )
    return result.identity


def verify_and_capture(
    model: Path,
    signature: Path,
    verifier: ModelVerifier,
    *,
    ignore_paths: Sequence[Path] = (),
    allow_symlinks: bool = False,
    quiet: bool = True,
    capture: str | None = None,
    require_capture_signed: bool = False,
    workers: int | None = None,
    ignore_git_paths: bool = True,
) -> Verification:
    """:func:`verify_model`, optionally copying resource file ``capture`` into a sealed memfd.

    With ``require_capture_signed`` the captured file must be a signed
    resource (a loader never loads an ignored file). The caller owns (and
    must close) ``result.hashed.captured``.
    """
    # (1) the model, and what may be unsigned
    layout = ModelLayout.resolve(
        model, signature=signature, ignore_paths=ignore_paths, ignore_git_paths=ignore_git_paths
    )
    # (2) parse
    raw = read_limited(signature, "model.signature", _oms.MAX_BUNDLE_BYTES)
    parsed = _oms.parse_bundle(raw, verifier.method, str(signature))
    # (3) cryptography; model-signing prints a warning on stdout for old key bundles,
    # which must not corrupt machine-readable output.
    with contextlib.redirect_stdout(sys.stderr):
        statement = _oms.verify_bundle(parsed, verifier, str(signature))
    # (4) what the signer declared
    serialization = accept_serialization(statement.serialization, statement.resources)
    accepted_ignores = check_ignore_paths(statement.serialization, layout)
    layout = layout.with_ignores(PurePosixPath(p) for p in accepted_ignores)
    check_signed_not_ignored(statement.resources, serialization, layout)
    # (5) hash what is there now, the way the signature says
    files = layout.files(allow_symlinks=allow_symlinks)
    if capture is not None and require_capture_signed:
        _require_signed(capture, statement.resources, serialization)
    try:
        total = sum(f.path.stat().st_size for f in files)
        progress = Progress.for_terminal(f"verifying {layout.name}", total, quiet=quiet)
        hashed = hash_model(
            files, serialization, capture=capture, progress=progress, workers=workers
        )
    except OSError as err:  # a file vanished or became unreadable while we read the model
        raise UsageError(
            "model.read", f"cannot read {err.filename or layout.root}: {err.strerror or err}"
        ) from err
    # (6) compare, closing the capture on any mismatch
    try:
        compare_resources(
            statement.resources,
            hashed.resources,
            serialization,
            single_file=layout.name if layout.is_file else None,
        )
    except BaseException:
        if hashed.captured is not None:
            hashed.captured.close()
        raise
    identity = ModelIdentity(
        root_digest=statement.root_digest,
        files={name: digest for name, (_, digest) in statement.resources.items()},
        signer=statement.signer,
        issuer=statement.issuer,
        method=verifier.method,
        hash_algorithm=serialization.hash_algorithm,
        serialization=serialization.method,
        shard_size=serialization.shard_size,
        model_name=statement.subject_name,
        signer_fingerprint=statement.signer_fingerprint,
        accepted_ignore_paths=accepted_ignores,
    )
    return Verification(identity=identity, hashed=hashed)


def accept_serialization(
    params: dict[str, Any], resources: dict[str, tuple[str, str]]
) -> Serialization:
    """The serialization the signature declares, if we accept it (PolicyError otherwise)."""
    method = params.get("method")
    if method not in ("files", "shards"):
        raise PolicyError("model.serialization.method", expected="files|shards", actual=method)
    hash_type = params.get("hash_type")
    if hash_type not in SUPPORTED_HASHES:
        raise PolicyError(
            "model.serialization.hash_type",
            "hashing method not accepted",
            expected="|".join(SUPPORTED_HASHES),
            actual=hash_type,
        )
    shard_size = None
    if method == "shards":
        shard_size = params.get("shard_size")
        # The statement travels as a protobuf Struct, so model-signing writes numbers as
        # JSON doubles (16777216.0); an integral value is what was meant.
        if isinstance(shard_size, float) and shard_size.is_integer():
            shard_size = int(shard_size)
        if not isinstance(shard_size, int) or isinstance(shard_size, bool):
            raise PolicyError(
                "model.serialization.shard_size", expected="an integer", actual=shard_size
            )
        if shard_size < MIN_SHARD_SIZE:
            raise PolicyError(
                "model.serialization.shard_size",
                "shards this small make hashing a denial of service",
                expected=f">= {MIN_SHARD_SIZE}",
                actual=shard_size,
            )
    serialization = Serialization(method=method, hash_algorithm=hash_type, shard_size=shard_size)
    for name, (algorithm, _) in resources.items():
        if algorithm != serialization.resource_algorithm:
            raise PolicyError(
                "model.resource.algorithm",
                f"resource {_safe(name)} uses a different hash than the serialization",
                expected=serialization.resource_algorithm,
                actual=algorithm,
            )
    return serialization


# Why a recorded ignore path the verifier did not name may still be accepted: ignoring
# it hides nothing (the summary of a verification lists each one with its reason).
IGNORE_NAMES_NOTHING = "names nothing in the verified model"
IGNORE_IS_SIGNATURE = "the signature file's own name (a signature, never loaded)"


def check_ignore_paths(params: dict[str, Any], layout: ModelLayout) -> dict[str, str]:
    """Refuse a signature that leaves out paths the verifier did not allow.

    A recorded ignore path beyond the verifier's own is still accepted when
    ignoring it hides nothing: it names nothing in the model (a signer that
    wrote ``model.sig`` into the model directory records it; verifying with the
    signature kept elsewhere, as the official ``model_signing verify`` allows,
    leaves that name empty), or it is the signature file's own name. Returns
    the accepted ones, each with its reason.
    """
    declared = params.get("ignore_paths", [])
    if not isinstance(declared, list):
        raise PolicyError("model.ignore_paths", "ignore_paths is not a list", actual=declared)
    unexpected = []
    accepted: dict[str, str] = {}
    for entry in declared:
        path = PurePosixPath(str(entry))
        escapes = path.is_absolute() or ".." in path.parts or str(path) in ("", ".")
        if escapes:
            unexpected.append(str(entry))
        elif layout.is_ignored(path):
            continue
        elif layout.is_file or not os.path.lexists(layout.root / path):
            accepted[str(path)] = IGNORE_NAMES_NOTHING
        elif (
            len(path.parts) == 1
            and path.name == layout.signature_file_name
            and (layout.root / path).is_file()
            and not (layout.root / path).is_symlink()
        ):
            accepted[str(path)] = IGNORE_IS_SIGNATURE
        else:
            unexpected.append(str(entry))
    if unexpected:
        raise PolicyError(
            "model.ignore_paths",
            "the signature leaves out paths this verifier does not allow "
            "(allow them with --ignore-paths)",
            expected=f"a subset of {layout.recorded_ignores()}",
            actual=sorted(_safe(u) for u in unexpected),
        )
    return accepted


def check_signed_not_ignored(
    resources: dict[str, tuple[str, str]], serialization: Serialization, layout: ModelLayout
) -> None:
    """Refuse to ignore a file the signature covers: the root digest would go unchecked."""
    covered = sorted(
        name
        for name in _group(resources, serialization)
        if name != "." and layout.is_ignored(PurePosixPath(name))
    )
    if covered:
        raise PolicyError(
            "model.ignore_paths.signed",
            "the verifier ignores files the signature covers, so the root digest "
            "could not be vouched for (drop those --ignore-paths)",
            expected="no signed file ignored",
            actual=[_safe(name) for name in covered],
        )


def compare_resources(
    expected: dict[str, tuple[str, str]],
    actual: dict[str, tuple[str, str]],
    serialization: Serialization,
    *,
    single_file: str | None = None,
) -> None:
    """SignatureError naming the first differing file, with every difference in the detail.

    ``single_file`` is the file's name when the model is one file (OMS calls it ``.``).
    """
    if expected == actual:
        return
    by_file_expected = _group(expected, serialization)
    by_file_actual = _group(actual, serialization)
    problems: list[tuple[str, str, str | None, str | None]] = []
    for name in sorted(by_file_expected.keys() | by_file_actual.keys()):
        want = by_file_expected.get(name)
        have = by_file_actual.get(name)
        if have is None:
            problems.append(("missing", name, _summary(want), None))
        elif want is None:
            problems.append(("extra", name, None, _summary(have)))
        elif want != have:
            problems.append(("changed", name, _summary(want), _summary(have)))
    if not problems:  # pragma: no cover - algorithms were checked to match before hashing
        raise SignatureError(
            "model.resources", "the recomputed manifest differs from the signed one"
        )
    if single_file is not None:
        problems = [(k, single_file if n == "." else n, w, h) for k, n, w, h in problems]
    kind, name, want_digest, have_digest = problems[0]
    listing = ", ".join(f"{_safe(n)} ({k})" for k, n, _, _ in problems)
    detail = {
        "missing": "a signed file is missing",
        "extra": "a file is not covered by the signature",
        "changed": "file content differs from the signed digest",
    }[kind]
    raise SignatureError(
        f"model.file_{kind}[{_safe(name)}]",
        f"{detail}; {len(problems)} difference(s): {listing}",
        expected=want_digest or "(absent)",
        actual=have_digest or "(absent)",
    )


def _group(
    resources: dict[str, tuple[str, str]], serialization: Serialization
) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for resource, (_, digest) in resources.items():
        path = resource.rsplit(":", 2)[0] if serialization.method == "shards" else resource
        grouped.setdefault(path, {})[resource] = digest
    return grouped


def _summary(digests: dict[str, str] | None) -> str | None:
    if digests is None:
        return None
    if len(digests) == 1:
        return next(iter(digests.values()))
    return ",".join(f"{k.rsplit(':', 2)[1]}:{v[:16]}" for k, v in sorted(digests.items()))


def _require_signed(
    name: str, resources: dict[str, tuple[str, str]], serialization: Serialization
) -> None:
    names = _group(resources, serialization)
    if name not in names:
        raise SignatureError(
            f"model.file_unsigned[{_safe(name)}]",
            "the file to load is not covered by the signature",
            expected="a signed resource",
            actual="ignored or absent from the signature",
        )


def _safe(text: str) -> str:
    """Escape control characters so a hostile file name cannot rewrite a terminal line."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def read_signature_path(signature: Path) -> Path:
    """Refuse a missing signature early with a usage error (used by the CLI)."""
    if not signature.is_file():
        raise UsageError("model.signature", f"{signature} does not exist or is not a file")
    return signature
