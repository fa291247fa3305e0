"""The parsed contract: parties, typed inputs, model turns, outputs, capability tests.

This is the one contract model. ``tcme.contract.parse`` builds it from
canonical bytes (both kinds), the enclave runs it, parties check it, and
``tcme.wire`` binds its digest into every signed structure. Values are checked
by the input's constraint object (``tcme.contract.constraints``, one input-type
system for every kind) and outputs by theirs (``tcme.contract.outputs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from tcme.base.keys import HpkePublicKey
from tcme.contract.errors import ContractError, InputError, OutputValueError


class ContractKind(StrEnum):
    """The contract kinds (``kind`` in the contract); the parser registers one per kind."""

    # One prompt, one enum output, parties with typed inputs (the original kind).
    ENUM_DECISION = "enum-decision"
    # The full language: labelled inputs, several model turns, enum/grammar/JSON outputs.
    GENERAL = "general"


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


class InputConstraint(Protocol):
    """How one input type checks and renders a value (``tcme.contract.constraints``)."""

    def check(self, spec: InputSpec, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` fits; never quote the value."""

    def render(self, value: Any) -> str:
        """Prompt text of a checked value."""


@dataclass(frozen=True)
class InputSpec:
    """One typed input a party provides; ``constraint`` checks and renders its values.

    ``minimum``/``maximum`` (integer), ``max_len``/``pattern`` (string) and
    ``values`` (enum) repeat the declaration for summaries and examples.
    ``may_flow_to`` (kind ``general``): parties that may learn values derived
    from this input (the owner always may).
    """

    party: str
    name: str
    type: str
    constraint: InputConstraint = field(compare=False, repr=False)
    minimum: int | None = None
    maximum: int | None = None
    max_len: int | None = None
    pattern: str | None = None
    values: tuple[str, ...] = ()
    may_flow_to: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        """Raise ``InputError`` unless ``value`` satisfies this spec (never quotes it)."""
        self.constraint.check(self, value)

    def render(self, value: Any) -> str:
        """The text a checked value takes in a prompt (integers in decimal)."""
        return self.constraint.render(value)


class OutputConstraint(Protocol):
    """How a non-enum output is constrained (``tcme.contract.outputs``)."""

    def grammar(self) -> str:
        """GBNF that constrains decoding."""

    def normalize(self, text: str) -> str:
        """The released value for model ``text``; raises ``OutputValueError`` when off-contract."""


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

        Enum values are restricted (``fields.ENUM_VALUE``) to characters that
        need no escaping inside a GBNF string literal.
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
    """A validated contract. ``raw`` is its canonical bytes, ``digest`` = SHA-256(raw).

    ``kind`` is the one place that says which kind this is: kind ``general``
    computes each output in its own model turn (``OutputSpec.turn``), kind
    ``enum-decision`` computes its one output from ``prompt``.
    """

    raw: bytes
    digest: bytes
    kind: ContractKind
    parties: tuple[Party, ...]
    inputs: tuple[InputSpec, ...]
    prompt: str
    system: str | None
    decoding: Decoding
    outputs: tuple[OutputSpec, ...]
    timeout_seconds: int
    # Kind "general" only: agreed public test cases (tcme.contract.capability), the
    # score the enclave must reach before it opens the session, and the tokens (prompt +
    # generated) all tests together may use.
    capability_tests: tuple[Any, ...] = field(default=(), compare=False)
    min_score_percent: int = 0
    capability_token_budget: int = 0
    title: str | None = None

    @property
    def has_turns(self) -> bool:
        """True for kind ``general``: every output has its own model turn."""
        return self.kind is ContractKind.GENERAL

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
                expected=", ".join(sorted(expected)) or "none",
                actual=", ".join(sorted(str(k) for k in values)) or "none",
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
            "kind": str(self.kind),
            "parties": [p.name for p in self.parties],
            "outputs": outputs,
        }
        if self.capability_tests:
            out["capability_tests"] = len(self.capability_tests)
            out["capability_token_budget"] = self.capability_token_budget
            out["min_score_percent"] = self.min_score_percent
        return out
