"""Which files make up a model, as the OpenSSF model signing format sees them.

A model is a single file or a directory. Resource names are POSIX paths
relative to the model (``.`` for a single-file model, as model-signing names
it). Paths are ignored when the verifier or signer says so (``ignore_paths``,
relative to the model directory or absolute inside it), plus the signature
file itself when it lies inside the model, plus git metadata (as the official
``model_signing`` tool does). Symbolic links are refused unless allowed.
The walk matches model-signing's own (``model_path.glob("**/*")``) so both
produce the same manifest; a test checks that.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from attestation.errors import PolicyError, UsageError

# model-signing's default ignore list (hashing.Config with ignore_git_paths=True).
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")


@dataclass(frozen=True)
class ModelFile:
    """One file of the model: its resource name and where it is on disk."""

    name: str
    path: Path


@dataclass(frozen=True)
class ModelLayout:
    """A model's root and the paths the caller allows to be left out of it."""

    root: Path
    is_file: bool
    allowed_ignores: frozenset[PurePosixPath]
    """Paths (relative to ``root``) that may be unsigned."""
    user_ignores: tuple[PurePosixPath, ...]
    """The caller's own ignore paths (what a signer records besides git and the signature)."""
    signature_name: PurePosixPath | None
    """The signature file relative to ``root`` when it lies inside the model, else None."""
    signature_file_name: str | None = None
    """The signature file's own name (its last path component), wherever it lies."""

    @property
    def name(self) -> str:
        """The model name OMS records (final path component)."""
        return self.root.name or self.root.resolve().name

    @classmethod
    def resolve(
        cls,
        model: Path,
        *,
        signature: Path | None,
        ignore_paths: Sequence[Path] = (),
        ignore_git_paths: bool = True,
    ) -> ModelLayout:
        """Check the model path and turn ignore paths into names relative to it."""
        if not model.exists():
            raise UsageError("model.path", f"{model} does not exist")
        if model.is_symlink():
            raise UsageError("model.path", f"{model} is a symbolic link; name the real path")
        root = model.absolute()
        is_file = root.is_file()
        if not is_file and not root.is_dir():
            raise UsageError("model.path", f"{model} is neither a regular file nor a directory")
        user: list[PurePosixPath] = []
        for path in ignore_paths:
            if is_file:
                raise UsageError(
                    "model.ignore_paths",
                    "a single-file model has nothing to ignore",
                    actual=str(path),
                )
            user.append(_relative_inside(root, path, must_be_inside=True))
        signature_name = None
        if signature is not None and not is_file:
            # The signature path is an ordinary path (relative to the working directory).
            rel = _relative_inside(root, signature.absolute(), must_be_inside=False)
            signature_name = rel if rel != PurePosixPath("..") else None
        allowed = set(user)
        if signature_name is not None:
            allowed.add(signature_name)
        if ignore_git_paths:
            allowed.update(PurePosixPath(p) for p in GIT_PATHS)
        return cls(
            root=root,
            is_file=is_file,
            allowed_ignores=frozenset(allowed),
            user_ignores=tuple(sorted(set(user))),
            signature_name=signature_name,
            signature_file_name=signature.name if signature is not None else None,
        )

    def with_ignores(self, names: Iterable[PurePosixPath]) -> ModelLayout:
        """This layout with ``names`` also allowed to be left out."""
        return dataclasses.replace(self, allowed_ignores=self.allowed_ignores | frozenset(names))

    def recorded_ignores(self) -> list[str]:
        """The ``ignore_paths`` a signer writes into the signature (sorted)."""
        return sorted(str(p) for p in self.allowed_ignores)

    def is_ignored(self, name: PurePosixPath) -> bool:
        """True when ``name`` is, or lies under, an allowed ignore path."""
        return any(
            name == ignored or name.is_relative_to(ignored) for ignored in self.allowed_ignores
        )

    def files(self, *, allow_symlinks: bool) -> list[ModelFile]:
        """Every file of the model that is not ignored, sorted by name.

        Raises PolicyError for a symbolic link (unless allowed) or a special
        file (socket, FIFO, device): those have no stable content to sign.
        """
        found: list[ModelFile] = []
        candidates: Iterable[Path] = itertools.chain((self.root,), self.root.glob("**/*"))
        for path in candidates:
            name = (
                PurePosixPath(".")
                if path == self.root
                else PurePosixPath(path.relative_to(self.root).as_posix())
            )
            if name != PurePosixPath(".") and self.is_ignored(name):
                continue
            try:
                info = os.lstat(path)
            except OSError as err:
                raise UsageError("model.path", f"cannot read {path}: {err.strerror}") from err
            if stat.S_ISLNK(info.st_mode):
                if not allow_symlinks:
                    raise PolicyError(
                        "model.symlink",
                        f"{str(name)!r} is a symbolic link (allow it explicitly to follow links)",
                        expected="no symbolic links",
                        actual=f"{name} -> {os.readlink(path)}",
                    )
                if not path.exists():
                    raise PolicyError("model.symlink", f"{str(name)!r} is a dangling link")
                info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise PolicyError(
                    "model.file_type",
                    f"{str(name)!r} is not a regular file",
                    expected="regular file",
                    actual=stat.filemode(info.st_mode),
                )
            found.append(ModelFile(name=str(name), path=path))
        return sorted(found, key=lambda f: f.name)


def _relative_inside(root: Path, path: Path, *, must_be_inside: bool) -> PurePosixPath:
    """``path`` (relative to ``root`` or absolute) as a POSIX path relative to ``root``.

    Returns ``..`` for a path outside ``root`` when ``must_be_inside`` is False.
    """
    candidate = path if path.is_absolute() else root / path
    resolved_root = root.resolve()
    resolved = Path(os.path.normpath(candidate))
    for base in (root, resolved_root):
        try:
            rel = PurePosixPath(resolved.relative_to(base).as_posix())
        except ValueError:
            continue
        if rel == PurePosixPath("."):
            break
        return rel
    if must_be_inside:
        raise UsageError(
            "model.ignore_paths",
            "ignore paths must lie inside the model directory",
            expected=f"a path under {root}",
            actual=str(path),
        )
    return PurePosixPath("..")
