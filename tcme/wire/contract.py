"""Session contracts: canonical bytes, digest, and the rules a valid one follows.

Both sides run the same validator: the enclave before opening a session, each
party before it agrees. Two contract kinds exist:

- ``enum-decision`` (parties with typed inputs, one prompt template,
  deterministic decoding, one enum output with recipients), parsed here;
- ``general`` (the full contract language: constrained inputs with
  information-flow labels, several model turns, enum / GBNF / JSON Schema
  outputs, capability tests), parsed by ``tcme.contract.general`` and
  registered in ``_KINDS`` below. docs/contracts.md describes it.

New kinds or input types register in ``_KINDS`` / ``_INPUT_TYPES``; anything
unknown is rejected, never ignored.

Errors never quote an input value: a party input is secret even when invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from attestation.errors import ParseError, TcmeError
from tcme.wire._encoding import (
    MAX_SAFE_INT,
    canonical_json,
    load_json_text,
    parse_canonical_json,
    sha256,
    unb64,
)
from tcme.wire.fields import ContractError
from tcme.wire.fields import as_list as _list
from tcme.wire.fields import as_name as _name
from tcme.wire.fields import as_string as _string
from tcme.wire.fields import as_text as _text
from tcme.wire.fields import enum_values as _enum_values
from tcme.wire.fields import fields as _fields
from tcme.wire.fields import int_in as _int_in
from tcme.wire.keys import ED25519_PUBLIC_SIZE, HPKE_PUBLIC_SIZE, HpkePublicKey, ed25519_public

CONTRACT_TYPE = "tcme/v1/contract"
KIND_ENUM_DECISION = "enum-decision"
KIND_GENERAL = "general"

PARTY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Enum values go into a GBNF grammar literal; this alphabet needs no escaping.
MAX_PARTIES = 16
MAX_INPUTS = 64
MAX_STRING_LEN = 4096
MAX_PROMPT_CHARS = 16384
MAX_TOKENS_LIMIT = 512
DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 3600


class InputError(TcmeError):
    """A party input does not satisfy the contract (the value itself is never quoted)."""


@dataclass(frozen=True)
class Party:
    """A party: name, Ed25519 key that signs its input, HPKE key that receives outputs."""

    name: str
    signing_key: bytes
    hpke_key: bytes

    @property
    def hpke_public(self) -> HpkePublicKey:
        """The parsed HPKE public key."""
        return HpkePublicKey.from_bytes(self.hpke_key, f"contract.parties.{self.name}.hpke_key")


@dataclass(frozen=True)
class InputSpec:
    """One typed input a party provides."""

    party: str
    name: str
    type: str
    minimum: int | None = None
    maximum: int | None = None
    max_len: int | None = None
    pattern: str | None = None
    values: tuple[str, ...] = ()
    # Kind "general" only: parties that may learn values derived from this input
    # (the owner always may), and the type's own constraint object.
    may_flow_to: tuple[str, ...] = ()
    constraint: InputConstraint | None = field(default=None, compare=False, repr=False)

    def check(self, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` satisfies this spec (never quotes it)."""
        if self.constraint is not None:
            self.constraint.check(self, value)
            return
        _INPUT_TYPES[self.type].check(self, value)

    def render(self, value: Any) -> str:
        """The text a checked value takes in a prompt (integers in decimal)."""
        if self.constraint is not None:
            return self.constraint.render(value)
        return str(value)


class InputConstraint(Protocol):
    """How a ``general`` contract checks and renders one input type (tcme.contract)."""

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` fits; never quote the value."""

    def render(self, value: Any) -> str:
        """Prompt text of a checked value."""


class OutputConstraint(Protocol):
    """How a ``general`` contract constrains one non-enum output (tcme.contract)."""

    def grammar(self) -> str:
        """GBNF that constrains decoding."""

    def normalize(self, text: str) -> str:
        """The released value for model ``text``; raises ``OutputValueError`` when off-contract."""


class OutputValueError(TcmeError):
    """An output value breaks the contract's output constraint (the value is never quoted)."""


@dataclass(frozen=True)
class Decoding:
    """Deterministic decoding: temperature 0, a fixed seed, a token budget."""

    temperature: int
    seed: int
    max_tokens: int
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Turn:
    """Kind ``general``: the model call that computes one output.

    ``prompt`` references inputs and earlier outputs by ``{name}``.
    """

    prompt: str
    system: str | None
    max_tokens: int
    references: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OutputSpec:
    """One output: its type and the parties allowed to learn it.

    ``enum`` outputs list ``values``; ``grammar`` and ``json`` outputs (kind
    ``general``) carry a ``constraint``. In kind ``general`` every output has
    the ``turn`` that computes it; an output with no recipients is internal (an
    intermediate value only later turns see). ``declassify`` maps an input name
    to the parties this one output may reach although the input's
    ``may_flow_to`` does not name them.
    """

    name: str
    type: str
    values: tuple[str, ...]
    recipients: tuple[str, ...]
    turn: Turn | None = None
    declassify: tuple[tuple[str, tuple[str, ...]], ...] = ()
    constraint: OutputConstraint | None = field(default=None, compare=False, repr=False)

    def grammar(self) -> str:
        """GBNF for constrained decoding (enum: exactly one of the values).

        Enum values are restricted (``ENUM_VALUE``) to characters that need no
        escaping inside a GBNF string literal.
        """
        if self.constraint is not None:
            return self.constraint.grammar()
        alternatives = " | ".join(f'"{value}"' for value in self.values)
        return f"root ::= {alternatives}\n"

    def normalize(self, text: str) -> str:
        """The value released for model ``text``; raises ``OutputValueError`` if off-contract."""
        if self.constraint is not None:
            return self.constraint.normalize(text)
        if text not in self.values:
            raise OutputValueError(f"output.{self.name}.value", "not one of the contract's values")
        return text

    def accepts(self, value: str) -> bool:
        """True when ``value`` is a value this output may take (already normalized)."""
        try:
            return self.normalize(value) == value
        except OutputValueError:
            return False


@dataclass(frozen=True)
class Contract:
    """A validated contract. ``raw`` is its canonical bytes, ``digest`` = SHA-256(raw)."""

    raw: bytes
    digest: bytes
    kind: str
    parties: tuple[Party, ...]
    inputs: tuple[InputSpec, ...]
    prompt: str
    system: str | None
    decoding: Decoding
    outputs: tuple[OutputSpec, ...]
    timeout_seconds: int
    # Kind "general" only: agreed public test cases (tcme.contract.capability) and
    # the score the enclave must reach before it opens the session.
    capability_tests: tuple[Any, ...] = field(default=(), compare=False)
    min_score_percent: int = 0
    # Tokens (prompt + generated) all capability tests together may use; 0 without tests.
    capability_token_budget: int = 0
    title: str | None = None

    def party(self, name: str) -> Party:
        """The named party; raises ``ContractError`` (check ``contract.party``)."""
        for party in self.parties:
            if party.name == name:
                return party
        raise ContractError(
            "contract.party",
            "no such party in the contract",
            expected=" | ".join(p.name for p in self.parties),
            actual=name,
        )

    def inputs_of(self, party: str) -> tuple[InputSpec, ...]:
        """The inputs ``party`` provides, in contract order."""
        return tuple(spec for spec in self.inputs if spec.party == party)

    def outputs_for(self, party: str) -> tuple[OutputSpec, ...]:
        """The outputs ``party`` receives."""
        return tuple(out for out in self.outputs if party in out.recipients)

    def check_values(self, party: str, values: Any) -> dict[str, Any]:
        """Check a party's ``{input name: value}``: exactly its inputs, each within its type."""
        specs = self.inputs_of(party)
        if not isinstance(values, Mapping):
            raise InputError(f"input.{party}.values", "expected an object of input values")
        expected = {spec.name for spec in specs}
        if set(values) != expected:
            raise InputError(
                f"input.{party}.names",
                "input names differ from the contract",
                expected=sorted(expected),
                actual=sorted(str(k) for k in values),
            )
        for spec in specs:
            spec.check(values[spec.name])
        return dict(values)

    def output(self, name: str) -> OutputSpec:
        """The named output; raises ``ContractError`` (check ``contract.output``)."""
        for out in self.outputs:
            if out.name == name:
                return out
        raise ContractError(
            "contract.output",
            "no such output in the contract",
            expected=" | ".join(o.name for o in self.outputs),
            actual=name,
        )

    def summary(self) -> dict[str, Any]:
        """Printable fields for a verification summary."""
        outputs: dict[str, Any] = {}
        for o in self.outputs:
            entry: dict[str, Any] = {"recipients": list(o.recipients)}
            if o.type == "enum":
                entry["values"] = list(o.values)
            else:
                entry["type"] = o.type
            outputs[o.name] = entry
        out: dict[str, Any] = {
            "contract_digest": self.digest.hex(),
            "kind": self.kind,
            "parties": [p.name for p in self.parties],
            "outputs": outputs,
        }
        if self.capability_tests:
            out["capability_tests"] = len(self.capability_tests)
            out["capability_token_budget"] = self.capability_token_budget
            out["min_score_percent"] = self.min_score_percent
        return out


def canonical_contract(contract: Mapping[str, Any] | bytes | str) -> bytes:
    """Validate a contract (dict, or JSON text/bytes in any layout) and return canonical bytes."""
    if isinstance(contract, bytes | str):
        try:
            text = contract.decode("utf-8") if isinstance(contract, bytes) else contract
        except UnicodeDecodeError as err:
            raise ContractError("contract.json", "not UTF-8") from err
        try:
            contract = load_json_text(text, "contract")
        except ParseError as err:
            raise ContractError(
                err.check, err.detail, expected=err.expected, actual=err.actual
            ) from err
    try:
        raw = canonical_json(contract)
    except ValueError as err:
        raise ContractError("contract.json", str(err)) from err
    parse_contract(raw)
    return raw


def contract_digest(contract: bytes) -> bytes:
    """SHA-256 of the exact canonical contract bytes."""
    return sha256(contract)


def parse_contract(contract: bytes) -> Contract:
    """Parse and validate canonical contract bytes; raises ``ContractError`` or ``ParseError``."""
    obj = parse_canonical_json(contract, "contract")
    if not isinstance(obj, dict):
        raise ContractError("contract", "expected a JSON object", actual=type(obj).__name__)
    if obj.get("type") != CONTRACT_TYPE:
        raise ContractError("contract.type", expected=CONTRACT_TYPE, actual=obj.get("type"))
    kind = obj.get("kind")
    validator = _KINDS.get(kind) if isinstance(kind, str) else None
    if validator is None:
        raise ContractError(
            "contract.kind", "unsupported contract kind", expected=" | ".join(_KINDS), actual=kind
        )
    return validator(obj, bytes(contract))


# --- kind "enum-decision" --------------------------------------------------------------


def _parse_enum_decision(obj: dict[str, Any], raw: bytes) -> Contract:
    _fields(
        obj,
        "contract",
        {"type", "kind", "parties", "inputs", "prompt", "decoding", "outputs"},
        {"system", "timeout_seconds"},
    )
    parties = parse_parties(obj["parties"])
    names = [p.name for p in parties]
    inputs = _parse_inputs(obj["inputs"], names)
    prompt = _text(obj["prompt"], "contract.prompt", MAX_PROMPT_CHARS)
    referenced = prompt_placeholders(prompt)
    declared = {spec.name for spec in inputs}
    unknown = sorted(referenced - declared)
    if unknown:
        raise ContractError(
            "contract.prompt", f"placeholder(s) {', '.join(unknown)} name no declared input"
        )
    unused = sorted(declared - referenced)
    if unused:
        raise ContractError(
            "contract.prompt", f"input(s) {', '.join(unused)} are not used by the prompt"
        )
    system = obj.get("system")
    if system is not None:
        system = _text(system, "contract.system", MAX_PROMPT_CHARS)
    decoding = parse_decoding(obj["decoding"])
    outputs = _parse_outputs(obj["outputs"], names)
    timeout = obj.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    _int_in(timeout, "contract.timeout_seconds", 1, MAX_TIMEOUT_SECONDS)
    return Contract(
        raw=raw,
        digest=sha256(raw),
        kind=KIND_ENUM_DECISION,
        parties=parties,
        inputs=inputs,
        prompt=prompt,
        system=system,
        decoding=decoding,
        outputs=outputs,
        timeout_seconds=timeout,
    )


def parse_parties(value: Any) -> tuple[Party, ...]:
    """The contract's ``parties`` list: unique names, each with its two public keys."""
    items = _list(value, "contract.parties", 2, MAX_PARTIES)
    parties: list[Party] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"contract.parties[{index}]"
        _fields(item, where, {"name", "signing_key", "hpke_key"})
        name = _name(item["name"], f"{where}.name", PARTY_NAME)
        if name in seen:
            raise ContractError(f"{where}.name", f"duplicate party {name!r}")
        seen.add(name)
        signing = _b64(item["signing_key"], f"{where}.signing_key", ED25519_PUBLIC_SIZE)
        ed25519_public(signing, f"{where}.signing_key")
        hpke_raw = _b64(item["hpke_key"], f"{where}.hpke_key", HPKE_PUBLIC_SIZE)
        HpkePublicKey.from_bytes(hpke_raw, f"{where}.hpke_key")
        parties.append(Party(name=name, signing_key=signing, hpke_key=hpke_raw))
    signing_keys = [p.signing_key for p in parties]
    if len(set(signing_keys)) != len(signing_keys):
        raise ContractError("contract.parties", "two parties share a signing key")
    return tuple(parties)


def _parse_inputs(value: Any, party_names: Sequence[str]) -> tuple[InputSpec, ...]:
    items = _list(value, "contract.inputs", 1, MAX_INPUTS)
    specs: list[InputSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"contract.inputs[{index}]"
        if not isinstance(item, dict):
            raise ContractError(where, "expected an object")
        kind = item.get("type")
        input_type = _INPUT_TYPES.get(kind) if isinstance(kind, str) else None
        if input_type is None:
            raise ContractError(
                f"{where}.type",
                "unsupported input type",
                expected=" | ".join(_INPUT_TYPES),
                actual=kind,
            )
        spec = input_type.parse(item, where)
        if spec.party not in party_names:
            raise ContractError(f"{where}.party", "names no party", actual=spec.party)
        if spec.name in seen:
            raise ContractError(f"{where}.name", f"duplicate input {spec.name!r}")
        seen.add(spec.name)
        specs.append(spec)
    missing = [name for name in party_names if not any(s.party == name for s in specs)]
    if missing:
        raise ContractError("contract.inputs", f"party(ies) {', '.join(missing)} have no input")
    return tuple(specs)


# Stop strings (kind "general" only): a few short literals.
MAX_STOP = 4
MAX_STOP_CHARS = 32


def parse_decoding(value: Any, *, stop_allowed: bool = False) -> Decoding:
    """Deterministic decoding; ``stop`` strings only where the contract kind has them.

    ``enum-decision`` passes ``stop_allowed=False`` so its canonical form (and any
    digest already agreed) cannot grow a field.
    """
    _fields(
        value,
        "contract.decoding",
        {"temperature", "seed", "max_tokens"},
        {"stop"} if stop_allowed else set(),
    )
    if value["temperature"] != 0 or isinstance(value["temperature"], bool):
        raise ContractError(
            "contract.decoding.temperature",
            "decoding must be deterministic",
            expected=0,
            actual=value["temperature"],
        )
    _int_in(value["seed"], "contract.decoding.seed", 0, 2**32 - 1)
    _int_in(value["max_tokens"], "contract.decoding.max_tokens", 1, MAX_TOKENS_LIMIT)
    stop = _list(value.get("stop", []), "contract.decoding.stop", 0, MAX_STOP)
    for item in stop:
        _text(item, "contract.decoding.stop", MAX_STOP_CHARS)
    if len(set(stop)) != len(stop):
        raise ContractError("contract.decoding.stop", "duplicate stop string")
    return Decoding(
        temperature=0, seed=value["seed"], max_tokens=value["max_tokens"], stop=tuple(stop)
    )


def _parse_outputs(value: Any, party_names: Sequence[str]) -> tuple[OutputSpec, ...]:
    items = _list(value, "contract.outputs", 1, 1)
    outputs: list[OutputSpec] = []
    for index, item in enumerate(items):
        where = f"contract.outputs[{index}]"
        _fields(item, where, {"name", "type", "values", "recipients"})
        name = _name(item["name"], f"{where}.name", INPUT_NAME)
        if item["type"] != "enum":
            raise ContractError(f"{where}.type", expected="enum", actual=item["type"])
        values = _enum_values(item["values"], f"{where}.values", minimum=2)
        recipients = _list(item["recipients"], f"{where}.recipients", 1, MAX_PARTIES)
        for recipient in recipients:
            if recipient not in party_names:
                raise ContractError(f"{where}.recipients", "names no party", actual=recipient)
        if len(set(recipients)) != len(recipients):
            raise ContractError(f"{where}.recipients", "duplicate recipient")
        outputs.append(
            OutputSpec(name=name, type="enum", values=values, recipients=tuple(recipients))
        )
    return tuple(outputs)


# --- input types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _InputType:
    parse: Callable[[dict[str, Any], str], InputSpec]
    check: Callable[[InputSpec, Any], None]


def _parse_integer(item: dict[str, Any], where: str) -> InputSpec:
    _fields(item, where, {"party", "name", "type", "min", "max"})
    low = _int_in(item["min"], f"{where}.min", -MAX_SAFE_INT, MAX_SAFE_INT)
    high = _int_in(item["max"], f"{where}.max", -MAX_SAFE_INT, MAX_SAFE_INT)
    if low > high:
        raise ContractError(f"{where}.max", "max is below min", expected=f">= {low}", actual=high)
    return InputSpec(
        party=_string(item["party"], f"{where}.party"),
        name=_name(item["name"], f"{where}.name", INPUT_NAME),
        type="integer",
        minimum=low,
        maximum=high,
    )


def _check_integer(spec: InputSpec, value: Any) -> None:
    check = f"input.{spec.party}.{spec.name}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(check, "expected an integer", actual=type(value).__name__)
    assert spec.minimum is not None and spec.maximum is not None
    if not spec.minimum <= value <= spec.maximum:
        raise InputError(
            check, f"integer outside the contract range [{spec.minimum}, {spec.maximum}]"
        )


def _parse_string(item: dict[str, Any], where: str) -> InputSpec:
    _fields(item, where, {"party", "name", "type", "max_len"}, {"pattern"})
    max_len = _int_in(item["max_len"], f"{where}.max_len", 1, MAX_STRING_LEN)
    pattern = item.get("pattern")
    if pattern is not None:
        from tcme.contract import regex  # RE2 only: a contract's pattern is untrusted

        regex.compile_pattern(pattern, f"{where}.pattern")
    return InputSpec(
        party=_string(item["party"], f"{where}.party"),
        name=_name(item["name"], f"{where}.name", INPUT_NAME),
        type="string",
        max_len=max_len,
        pattern=pattern,
    )


def _check_string(spec: InputSpec, value: Any) -> None:
    check = f"input.{spec.party}.{spec.name}"
    if not isinstance(value, str):
        raise InputError(check, "expected a string", actual=type(value).__name__)
    assert spec.max_len is not None
    if len(value) > spec.max_len:
        raise InputError(check, f"string longer than the contract's max_len {spec.max_len}")
    from tcme.contract import regex

    if spec.pattern is not None and not regex.compiled(spec.pattern).fullmatch(value):
        raise InputError(check, "string does not match the contract's pattern")


def _parse_enum_input(item: dict[str, Any], where: str) -> InputSpec:
    _fields(item, where, {"party", "name", "type", "values"})
    return InputSpec(
        party=_string(item["party"], f"{where}.party"),
        name=_name(item["name"], f"{where}.name", INPUT_NAME),
        type="enum",
        values=_enum_values(item["values"], f"{where}.values", minimum=1),
    )


def _check_enum(spec: InputSpec, value: Any) -> None:
    if not isinstance(value, str) or value not in spec.values:
        raise InputError(f"input.{spec.party}.{spec.name}", "not one of the contract's values")


_INPUT_TYPES: dict[str, _InputType] = {
    "integer": _InputType(_parse_integer, _check_integer),
    "string": _InputType(_parse_string, _check_string),
    "enum": _InputType(_parse_enum_input, _check_enum),
}


def _parse_general(obj: dict[str, Any], raw: bytes) -> Contract:
    # The general language lives in tcme.contract (which imports this module).
    from tcme.contract.general import parse_general

    return parse_general(obj, raw)


_KINDS: dict[str, Callable[[dict[str, Any], bytes], Contract]] = {
    KIND_ENUM_DECISION: _parse_enum_decision,
    KIND_GENERAL: _parse_general,
}


# --- prompt template -----------------------------------------------------------------------

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def prompt_placeholders(template: str) -> set[str]:
    """Names referenced as ``{name}``; ``{{``/``}}`` are literal braces. Bad braces raise."""
    names: set[str] = set()
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None or INPUT_NAME.fullmatch(name) is None:
            raise ContractError(
                "contract.prompt",
                f"bad placeholder {token!r} at offset {match.start()} "
                "(use {input_name}; {{ and }} for literal braces)",
            )
        names.add(name)
    return names


def render_prompt(template: str, values: Mapping[str, Any]) -> str:
    """Substitute every ``{name}`` with ``str(values[name])`` (integers in decimal)."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(values[match.group(1)])

    return _TOKEN.sub(substitute, template)


# --- small field checks (the rest are in tcme.wire.fields) --------------------------


def _b64(value: Any, where: str, size: int) -> bytes:
    try:
        return unb64(value, where, size=size)
    except TcmeError as err:
        raise ContractError(
            err.check, err.detail, expected=err.expected, actual=err.actual
        ) from err
