"""Contract files (TOML or JSON) → the canonical contract every party and the enclave hash.

A file is the canonical contract of docs/contracts.md written by hand, with
one convenience: a party may name a key file instead of inlining its keys::

    [[parties]]
    name = "alice"
    keys = "keys/alice.key.pub.json"     # relative to the contract file

(the public entry ``tcme session keygen`` writes, or a private key file, of
which only the public half is used). A party with neither ``keys`` nor inline
keys makes the file a *template*: it can be checked but has no digest until
keys are given (``load_contract(path, keys={...})``).

Steps: read (strict: duplicate keys are an error, TOML dates and floats are
refused), validate against ``schema.json`` (structural errors with their JSON
path), inline the keys, then ``tcme.contract.parse.canonical_contract`` (every semantic
rule, the information-flow check included).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from attestation.errors import ParseError, UsageError
from tcme.base.encoding import check_depth, load_json_file, read_text_file
from tcme.base.keys import PartyKeys
from tcme.contract.errors import ContractError
from tcme.contract.model import Contract
from tcme.contract.parse import canonical_contract, parse_contract

SCHEMA_PATH = Path(__file__).with_name("schema.json")
# What a contract directory holds (docs/contracts.md "Examples": every example uses the first).
CONTRACT_NAMES = ("contract.toml", "contract.json")
# A contract file is the canonical contract with whitespace, comments and key-file names.
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedContract:
    """A checked contract file: the document with keys inlined, and the parsed contract.

    ``missing_keys`` lists parties the file gives no keys for; when it is not
    empty the file is a template, ``contract`` was checked with throwaway keys,
    and ``raw``/``digest`` are None.
    """

    path: Path
    document: dict[str, Any]
    contract: Contract
    missing_keys: tuple[str, ...]

    @property
    def raw(self) -> bytes | None:
        """Canonical bytes, or None for a template."""
        return None if self.missing_keys else self.contract.raw

    @property
    def digest(self) -> bytes | None:
        """SHA-256 of the canonical bytes, or None for a template."""
        return None if self.missing_keys else self.contract.digest


@cache
def contract_file_schema() -> dict[str, Any]:
    """The JSON Schema of contract files (``tcme/contract/schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def find_contract_file(path: Path) -> Path:
    """``path`` itself, or the contract file inside directory ``path``."""
    path = Path(path)
    if path.is_dir():
        for name in CONTRACT_NAMES:
            if (path / name).is_file():
                return path / name
        raise UsageError(
            "contract.file", f"no contract file in {path}", expected=" | ".join(CONTRACT_NAMES)
        )
    if not path.is_file():
        raise UsageError("contract.file", "no such file", actual=str(path))
    return path


def read_document(path: Path) -> dict[str, Any]:
    """The file as a dict (TOML when it ends in .toml, else JSON), bounded in size and depth."""
    if Path(path).suffix != ".toml":
        document = load_json_file(path, "contract", max_bytes=MAX_FILE_BYTES)
    else:
        text = read_text_file(path, "contract", max_bytes=MAX_FILE_BYTES)
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ParseError("contract.toml", f"{path}: {err}") from err
        except RecursionError:
            # tomllib recurses once per nested array/inline table.
            raise ParseError("contract.depth", f"{path}: nested too deeply") from None
        try:
            check_depth(document)
        except ValueError as err:
            raise ParseError("contract.depth", f"{path}: {err}") from None
    if not isinstance(document, dict):
        raise ParseError("contract.json", f"{path}: a contract is an object")
    return document


class ContractSchemaError(ContractError, ParseError):
    """The contract file does not have the file schema's shape: malformed input (exit 2),
    as opposed to a well-formed contract that breaks a rule of the language."""


# Every violation is listed; past this many the rest are counted (a file of garbage
# must not produce a megabyte of messages).
MAX_SCHEMA_ERRORS = 20


def validate_document(document: Mapping[str, Any]) -> None:
    """Structural check against ``schema.json``; raises ``ContractError`` with the JSON path."""
    from jsonschema import Draft202012Validator

    from tcme.contract.jsonschema_check import format_checker

    # format "regex" (the contract's patterns) is checked by RE2, never compiled by re.
    validator = Draft202012Validator(contract_file_schema(), format_checker=format_checker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if not errors:
        return
    violations = []
    for error in errors[:MAX_SCHEMA_ERRORS]:
        deepest = _deepest(error)
        path = "/" + "/".join(str(p) for p in deepest.absolute_path)
        violations.append(
            ContractSchemaError("contract.schema", f"at {path}: {deepest.message[:300]}")
        )
    if len(errors) > MAX_SCHEMA_ERRORS:
        violations.append(
            ContractSchemaError("contract.schema", f"and {len(errors) - MAX_SCHEMA_ERRORS} more")
        )
    raise ContractSchemaError(
        "contract.schema",
        f"{len(errors)} schema error(s)",
        actual=f"{len(errors)} schema error(s)",
        violations=violations,
    )


def _deepest(error: Any) -> Any:
    """The most specific sub-error of an if/then or allOf failure."""
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def public_entry_file(name: str, source: Path) -> dict[str, Any]:
    """``name``'s public ``parties[]`` entry from a key file (public entry or private keys)."""
    body = load_json_file(source, "contract.keys")
    if isinstance(body, dict) and body.get("type") == "tcme/v1/party-keys":
        return PartyKeys.load(source).public_entry(name)
    if not isinstance(body, dict) or not {"signing_key", "hpke_key"} <= body.keys():
        raise ParseError(
            "contract.keys", f"{source} is neither a public entry nor a tcme party key file"
        )
    if body.get("name", name) != name:
        raise UsageError(
            "contract.keys",
            f"{source} is another party's entry",
            expected=name,
            actual=body["name"],
        )
    return {"name": name, "signing_key": body["signing_key"], "hpke_key": body["hpke_key"]}


def resolve_parties(
    document: Mapping[str, Any],
    base: Path,
    keys: Mapping[str, PartyKeys | Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Inline every party's public keys; return the document and parties still without keys.

    ``keys`` (name → ``PartyKeys`` or public entry) wins over what the file says.
    """
    keys = keys or {}
    out = dict(document)
    parties = []
    missing = []
    for entry in document.get("parties", []):
        name = entry["name"]
        if name in keys:
            given = keys[name]
            public = given.public_entry(name) if isinstance(given, PartyKeys) else dict(given)
            public["name"] = name
        elif "keys" in entry:
            source = Path(entry["keys"])
            public = public_entry_file(name, source if source.is_absolute() else base / source)
        elif "signing_key" in entry:
            public = {k: entry[k] for k in ("name", "signing_key", "hpke_key")}
        else:
            public = {"name": name}
            missing.append(name)
        parties.append(public)
    unknown = sorted(set(keys) - {p["name"] for p in parties})
    if unknown:
        raise UsageError(
            "contract.keys", f"key(s) given for party(ies) not in the contract: {unknown}"
        )
    out["parties"] = parties
    return out, tuple(missing)


def load_contract(
    path: Path, *, keys: Mapping[str, PartyKeys | Mapping[str, Any]] | None = None
) -> LoadedContract:
    """Read, validate and canonicalise a contract file (or a directory holding one).

    A template (parties without keys) is checked in full with throwaway keys.
    Raises ``UsageError`` (file, keys), ``ParseError`` (syntax) or
    ``ContractError`` (schema, semantics, information flow).
    """
    path = find_contract_file(path)
    document = read_document(path)
    validate_document(document)
    resolved, missing = resolve_parties(document, path.parent, keys)
    probe = resolved
    if missing:
        throwaway = {name: PartyKeys.generate().public_entry(name) for name in missing}
        probe = dict(resolved)
        probe["parties"] = [throwaway.get(p["name"], p) for p in resolved["parties"]]
    try:
        raw = canonical_contract(probe)
    except ParseError as err:
        raise ContractError(
            err.check, err.detail, expected=err.expected, actual=err.actual
        ) from err
    return LoadedContract(
        path=path, document=resolved, contract=parse_contract(raw), missing_keys=missing
    )


def load_contract_bytes(
    path: Path, *, keys: Mapping[str, PartyKeys | Mapping[str, Any]] | None = None
) -> bytes:
    """The canonical bytes of the contract file ``path`` (TOML or JSON), keys filled in.

    What every command that needs a session's contract uses (``tcme session
    create``, ``[contract] file`` in a party policy, ``--contract``). A template
    with parties still without keys is refused (``contract.keys``).
    """
    loaded = load_contract(path, keys=keys)
    if loaded.raw is None:
        raise UsageError(
            "contract.keys",
            f"{loaded.path} is a template: no keys for {', '.join(loaded.missing_keys)} "
            '(add keys = "FILE" per party, or fill it with tcme session contract --party-key)',
        )
    return loaded.raw
