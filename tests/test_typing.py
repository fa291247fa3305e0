"""No ``# type: ignore`` in shipped code, and mypy stays configured to keep it so.

`make lint` and `make test` run mypy over the packages listed in pyproject.toml's
``[tool.mypy] files``. A type error there is fixed, not silenced: this test refuses
any ``type: ignore`` comment in the production packages and the scripts, benchmarks
and examples that ship beside them (tests may keep a coded one where they feed a
function a wrong type on purpose; ``warn_unused_ignores`` and ruff's PGH003 keep
those specific and live).
"""

from __future__ import annotations

import io
import re
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("attestation", "enclave", "host", "tcme", "scripts", "bench", "examples")
GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")
IGNORE = re.compile(r"#\s*type:\s*ignore", re.IGNORECASE)


def type_ignores(source: str) -> list[int]:
    """Lines of ``source`` with a ``type: ignore`` comment (comments only, not strings)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [t.start[0] for t in tokens if t.type == tokenize.COMMENT and IGNORE.match(t.string)]


def test_type_ignores_are_found_in_comments_only() -> None:
    source = 'x = f()  # type: ignore[arg-type]\ny = "# type: ignore"\nz = 1  #type:ignore\n'
    assert type_ignores(source) == [1, 3]


def test_no_type_ignore_in_shipped_code() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for top in SHIPPED
        for path in sorted((ROOT / top).rglob("*.py"))
        if not GENERATED.search(path.name)
        for line in type_ignores(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "fix the type instead of silencing mypy: " + ", ".join(found)


def test_mypy_config_refuses_silent_ignores() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    mypy = config["mypy"]
    assert mypy["warn_unused_ignores"] is True
    assert "ignore-without-code" in mypy["enable_error_code"]
    assert set(mypy["files"]) >= {"attestation", "enclave", "host", "tcme"}
    assert "PGH003" in config["ruff"]["lint"]["select"]
    # No blanket escape: untyped third-party modules are named one by one.
    assert "ignore_missing_imports" not in mypy
    for override in mypy.get("overrides", []):
        modules = override["module"]
        assert "*" not in (modules if isinstance(modules, list) else [modules])
