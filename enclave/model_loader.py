"""Load the signed model, and only the signed model, into llama.cpp.

There is no gap between the check and the use: the GGUF is read once, through
one descriptor, into a sealed memfd while it is hashed (see
:mod:`tcme.model.memfd` and :mod:`tcme.model.digest`); the digest must equal
the signed one; only then is llama.cpp pointed at ``/proc/self/fd/N``, which
names those sealed bytes. Replacing or rewriting the file on disk afterwards
changes nothing that is served, and a replacement made before the copy fails
the digest comparison. Because the copy lives in guest RAM, the host cannot
page new bytes in under llama.cpp's mapping either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import ParseError, UsageError
from tcme.model import ModelIdentity, ModelVerifier
from tcme.model.layout import ModelLayout
from tcme.model.memfd import SealedMemfd
from tcme.model.verify import verify_and_capture

if TYPE_CHECKING:
    import llama_cpp


@dataclass
class LoadedModel:
    """A llama.cpp model built from verified, sealed bytes."""

    llama: llama_cpp.Llama
    identity: ModelIdentity
    loaded_digest: str
    """Hex SHA-256 of the exact bytes handed to llama.cpp (files serialization), or of their
    shard digests in offset order (shard serialization)."""
    gguf_name: str
    """The GGUF's resource name in the signature (``.`` for a single-file model)."""
    _memfd: SealedMemfd = field(repr=False)

    @property
    def memfd(self) -> SealedMemfd:
        """The sealed memfd llama.cpp reads (open for the model's lifetime)."""
        return self._memfd

    def close(self) -> None:
        """Free the llama.cpp model, then the sealed copy."""
        close = getattr(self.llama, "close", None)
        if close is not None:
            close()
        self._memfd.close()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_gguf(
    model: Path, *, signature: Path | None = None, ignore_paths: Sequence[Path] = ()
) -> str:
    """The resource name of the one GGUF in ``model`` (``.`` when ``model`` is the file).

    Raises UsageError when a directory holds no GGUF or more than one (split
    GGUFs are not supported: llama.cpp would open the other parts by path).
    """
    layout = ModelLayout.resolve(model, signature=signature, ignore_paths=ignore_paths)
    if layout.is_file:
        return "."
    candidates = [
        f.name for f in layout.files(allow_symlinks=False) if f.name.lower().endswith(".gguf")
    ]
    if len(candidates) != 1:
        raise UsageError(
            "model.gguf",
            "the model directory must hold exactly one .gguf file",
            expected="1",
            actual=f"{len(candidates)}: {', '.join(candidates) or '(none)'}",
        )
    return candidates[0]


def load_verified_model(
    model: Path,
    signature: Path,
    verifier: ModelVerifier,
    *,
    ignore_paths: Sequence[Path] = (),
    quiet: bool = True,
    **llama_kwargs: Any,
) -> LoadedModel:
    """Verify ``model`` against ``signature`` and load its GGUF from a sealed memfd.

    ``model`` is a ``.gguf`` file or a directory holding exactly one. Raises
    SignatureError (the check names the file; expected vs. actual digest) when
    the bytes read differ from the signed ones, and the errors of
    :func:`tcme.model.verify_model` otherwise. ``llama_kwargs`` go to
    ``llama_cpp.Llama`` (``verbose`` defaults to False).
    """
    if "model_path" in llama_kwargs:
        raise UsageError("model.load", "model_path is chosen by the loader (the sealed memfd)")
    gguf = find_gguf(model, signature=signature, ignore_paths=ignore_paths)
    verification = verify_and_capture(
        model,
        signature,
        verifier,
        ignore_paths=ignore_paths,
        quiet=quiet,
        capture=gguf,
        require_capture_signed=True,
    )
    memfd = verification.hashed.captured
    digest = verification.hashed.captured_digest
    assert memfd is not None and memfd.sealed and digest is not None
    try:
        from llama_cpp import Llama

        llama_kwargs.setdefault("verbose", False)
        try:
            llama = Llama(model_path=str(memfd.path), **llama_kwargs)
        except ValueError as err:
            raise ParseError(
                "model.load", f"llama.cpp could not load the verified GGUF {gguf!r}: {err}"
            ) from err
    except BaseException:
        memfd.close()
        raise
    return LoadedModel(
        llama=llama,
        identity=verification.identity,
        loaded_digest=digest,
        gguf_name=gguf,
        _memfd=memfd,
    )
