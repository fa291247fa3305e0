"""Kind ``general``: the full contract language, canonical dict → ``Contract``.

::

    {"type": "tcme/v1/contract", "kind": "general",
     "title": "optional one-line description",
     "parties": [{"name", "signing_key", "hpke_key"}, ...],          2..16
     "inputs": [{"party", "name", "type", ...constraint,
                 "may_flow_to": [party, ...]}, ...],                  1..64 in all
     "system": "optional default system message",
     "decoding": {"temperature": 0, "seed": int, "max_tokens": int, "stop": [str]?},
     "outputs": [{"name", "type": "enum" | "grammar" | "json", ...constraint,
                  "prompt": "... {input} ... {earlier_output} ...",
                  "system"?: str, "max_tokens"?: int,
                  "recipients": [party, ...],                         [] = internal
                  "declassify"?: {input: [party, ...]}}, ...],        1..8 turns
     "capability_tests"?: [{"inputs": {...}, "expected": {...}}],
     "capability_token_budget": 1..8192,                 with capability_tests only
     "min_score_percent"?: 0..100,
     "timeout_seconds"?: 1..3600}

Outputs are computed in order, one model turn each. Input and output names
share one namespace (a prompt cannot tell them apart). docs/contracts.md has
the full rules; this parser is their one implementation, run by parties and
by the enclave alike, and it finishes with the information-flow check
(``tcme.contract.flow``).
"""

from __future__ import annotations

from typing import Any

from tcme.base.encoding import json_type, sha256
from tcme.contract import capability, constraints, flow, outputs
from tcme.contract.errors import ContractError
from tcme.contract.fields import INPUT_NAME, as_list, as_name, as_text, fields, int_in
from tcme.contract.model import Contract, ContractKind, Decoding, InputSpec, OutputSpec, Turn
from tcme.contract.parts import (
    MAX_PROMPT_CHARS,
    MAX_TOKENS_LIMIT,
    parse_decoding,
    parse_inputs,
    parse_parties,
    parse_timeout,
)
from tcme.contract.template import prompt_placeholders

MAX_OUTPUTS = 8
MAX_TITLE_CHARS = 200
OUTPUT_TYPES = ("enum", "grammar", "json")


def parse_general(obj: dict[str, Any], raw: bytes) -> Contract:
    """Validate a ``general`` contract object; ``raw`` are its canonical bytes."""
    fields(
        obj,
        "contract",
        {"type", "kind", "parties", "inputs", "decoding", "outputs"},
        {
            "title",
            "system",
            "timeout_seconds",
            "capability_tests",
            "capability_token_budget",
            "min_score_percent",
        },
    )
    title = obj.get("title")
    if title is not None:
        title = as_text(title, "contract.title", MAX_TITLE_CHARS)
    parties = parse_parties(obj["parties"])
    names = [p.name for p in parties]
    # Parties without inputs are allowed: they only receive, and still submit an
    # empty signed input, which is their consent to the run (the release barrier).
    inputs = parse_inputs(obj["inputs"], names, constraints.GENERAL_INPUTS)
    system = obj.get("system")
    if system is not None:
        system = _static_text(system, "contract.system")
    decoding = parse_decoding(obj["decoding"], stop_allowed=True)
    outs = _parse_outputs(obj["outputs"], names, inputs, system, decoding)
    _check_usage(inputs, outs)
    flow.check_flows(inputs, outs)
    tests: tuple[Any, ...] = ()
    if "capability_tests" in obj:
        tests = capability.parse_tests(obj["capability_tests"], inputs, outs)
    budget = _token_budget(obj, bool(tests))
    min_score = obj.get("min_score_percent", 0)
    int_in(min_score, "contract.min_score_percent", 0, 100)
    if "min_score_percent" in obj and not tests:
        raise ContractError(
            "contract.min_score_percent", "a minimum score needs capability_tests to measure it"
        )
    timeout = parse_timeout(obj)
    return Contract(
        raw=raw,
        digest=sha256(raw),
        kind=ContractKind.GENERAL,
        parties=parties,
        inputs=inputs,
        prompt="",
        system=system,
        decoding=decoding,
        outputs=outs,
        timeout_seconds=timeout,
        capability_tests=tests,
        min_score_percent=min_score,
        capability_token_budget=budget,
        title=title,
    )


def _token_budget(obj: dict[str, Any], has_tests: bool) -> int:
    """``capability_token_budget``: required with capability tests, refused without them."""
    where = "contract.capability_token_budget"
    if not has_tests:
        if "capability_token_budget" in obj:
            raise ContractError(where, "a token budget needs capability_tests to spend it")
        return 0
    if "capability_token_budget" not in obj:
        raise ContractError(
            where,
            "capability tests need a total token budget (prompt and generated tokens "
            "of every turn of every test)",
            expected=f"1..{capability.MAX_TOKEN_BUDGET}",
        )
    return int_in(obj["capability_token_budget"], where, 1, capability.MAX_TOKEN_BUDGET)


def _static_text(value: Any, where: str) -> str:
    """Text without placeholders (a system message is the same for every session)."""
    text = as_text(value, where, MAX_PROMPT_CHARS)
    if prompt_placeholders(text):
        raise ContractError(where, "a system message cannot reference inputs or outputs")
    return text


_OUTPUT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "enum": ({"values"}, set()),
    "grammar": ({"grammar", "max_chars"}, {"pattern"}),
    "json": ({"schema", "max_chars"}, set()),
}
_TURN_FIELDS = {"name", "type", "prompt", "recipients"}
_TURN_OPTIONAL = {"system", "max_tokens", "declassify"}


def _parse_outputs(
    value: Any,
    party_names: list[str],
    inputs: tuple[InputSpec, ...],
    default_system: str | None,
    decoding: Decoding,
) -> tuple[OutputSpec, ...]:
    items = as_list(value, "contract.outputs", 1, MAX_OUTPUTS)
    input_names = {spec.name for spec in inputs}
    outs: list[OutputSpec] = []
    for index, item in enumerate(items):
        where = f"contract.outputs[{index}]"
        if not isinstance(item, dict):
            raise ContractError(where, "expected an object", actual=json_type(item))
        kind = item.get("type")
        if kind not in _OUTPUT_FIELDS:
            raise ContractError(
                f"{where}.type",
                "unsupported output type",
                expected=" | ".join(OUTPUT_TYPES),
                actual=kind,
            )
        required, optional = _OUTPUT_FIELDS[kind]
        fields(item, where, _TURN_FIELDS | required, _TURN_OPTIONAL | optional)
        name = as_name(item["name"], f"{where}.name", INPUT_NAME)
        if name in input_names or any(o.name == name for o in outs):
            raise ContractError(
                f"{where}.name", f"{name!r} is already an input or output name (one namespace)"
            )
        recipients = constraints.parse_parties(
            item["recipients"], f"{where}.recipients", party_names
        )
        prompt = as_text(item["prompt"], f"{where}.prompt", MAX_PROMPT_CHARS)
        references = prompt_placeholders(prompt)
        known = input_names | {o.name for o in outs}
        unknown = sorted(references - known)
        if unknown:
            raise ContractError(
                f"{where}.prompt",
                f"placeholder(s) {', '.join(unknown)} name no input or earlier output",
            )
        system = item.get("system")
        system = _static_text(system, f"{where}.system") if system is not None else default_system
        max_tokens = int_in(
            item.get("max_tokens", decoding.max_tokens), f"{where}.max_tokens", 1, MAX_TOKENS_LIMIT
        )
        declassify = _parse_declassify(
            item.get("declassify", {}), f"{where}.declassify", party_names
        )
        values: tuple[str, ...] = ()
        constraint: Any = None
        if kind == "enum":
            values = constraints.enum_values(item["values"], f"{where}.values", minimum=2)
        elif kind == "grammar":
            constraint = outputs.grammar_output(name, item, where)
        else:
            constraint = outputs.json_output(name, item, where)
        outs.append(
            OutputSpec(
                name=name,
                type=kind,
                values=values,
                recipients=recipients,
                turn=Turn(
                    prompt=prompt,
                    system=system,
                    max_tokens=max_tokens,
                    references=frozenset(references),
                ),
                declassify=declassify,
                constraint=constraint,
            )
        )
    return tuple(outs)


def _parse_declassify(
    value: Any, where: str, party_names: list[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise ContractError(where, "expected {input name: [party, ...]}", actual=json_type(value))
    out = []
    for source in sorted(value):
        parties = constraints.parse_parties(value[source], f"{where}.{source}", party_names)
        if not parties:
            raise ContractError(f"{where}.{source}", "names no party")
        out.append((source, parties))
    return tuple(out)


def _check_usage(inputs: tuple[InputSpec, ...], outs: tuple[OutputSpec, ...]) -> None:
    """Every input is used by some prompt; every internal output by a later one."""
    used: set[str] = set()
    for out in outs:
        assert out.turn is not None
        used |= out.turn.references
    unused = [spec.name for spec in inputs if spec.name not in used]
    if unused:
        raise ContractError(
            "contract.inputs", f"input(s) {', '.join(unused)} are not used by any prompt"
        )
    for out in outs:
        if not out.recipients and out.name not in used:
            raise ContractError(
                "contract.outputs",
                f"output {out.name!r} has no recipients and no later prompt uses it",
            )
