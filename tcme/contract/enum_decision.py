"""Kind ``enum-decision``: one prompt, typed party inputs, one enum output.

::

    {"type": "tcme/v1/contract", "kind": "enum-decision",
     "parties": [{"name", "signing_key", "hpke_key"}, ...],          2..16
     "inputs": [{"party", "name", "type": "integer" | "string" | "enum", ...}],
     "prompt": "... {input} ...", "system"?: str,
     "decoding": {"temperature": 0, "seed": int, "max_tokens": int},
     "outputs": [{"name", "type": "enum", "values": [...], "recipients": [...]}],
     "timeout_seconds"?: 1..3600}

Its inputs are a subset of the ``general`` input types (the same constraint
objects, ``constraints.ENUM_DECISION_INPUTS``); its canonical bytes have not
changed since the kind was introduced, so digests agreed then still hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcme.base.encoding import sha256
from tcme.contract import constraints
from tcme.contract.errors import ContractError
from tcme.contract.fields import INPUT_NAME, as_list, as_name, as_text, enum_values, fields
from tcme.contract.model import Contract, ContractKind, OutputSpec
from tcme.contract.parts import (
    MAX_PARTIES,
    MAX_PROMPT_CHARS,
    parse_decoding,
    parse_inputs,
    parse_parties,
    parse_timeout,
)
from tcme.contract.template import prompt_placeholders


def parse_enum_decision(obj: dict[str, Any], raw: bytes) -> Contract:
    """Validate an ``enum-decision`` contract object; ``raw`` are its canonical bytes."""
    fields(
        obj,
        "contract",
        {"type", "kind", "parties", "inputs", "prompt", "decoding", "outputs"},
        {"system", "timeout_seconds"},
    )
    parties = parse_parties(obj["parties"])
    names = [p.name for p in parties]
    inputs = parse_inputs(obj["inputs"], names, constraints.ENUM_DECISION_INPUTS)
    missing = [name for name in names if not any(s.party == name for s in inputs)]
    if missing:
        raise ContractError("contract.inputs", f"party(ies) {', '.join(missing)} have no input")
    prompt = as_text(obj["prompt"], "contract.prompt", MAX_PROMPT_CHARS)
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
        system = as_text(system, "contract.system", MAX_PROMPT_CHARS)
    return Contract(
        raw=raw,
        digest=sha256(raw),
        kind=ContractKind.ENUM_DECISION,
        parties=parties,
        inputs=inputs,
        prompt=prompt,
        system=system,
        decoding=parse_decoding(obj["decoding"]),
        outputs=_parse_outputs(obj["outputs"], names),
        timeout_seconds=parse_timeout(obj),
    )


def _parse_outputs(value: Any, party_names: Sequence[str]) -> tuple[OutputSpec, ...]:
    items = as_list(value, "contract.outputs", 1, 1)
    outputs: list[OutputSpec] = []
    for index, item in enumerate(items):
        where = f"contract.outputs[{index}]"
        fields(item, where, {"name", "type", "values", "recipients"})
        name = as_name(item["name"], f"{where}.name", INPUT_NAME)
        if item["type"] != "enum":
            raise ContractError(f"{where}.type", expected="enum", actual=item["type"])
        values = enum_values(item["values"], f"{where}.values", minimum=2)
        recipients = as_list(item["recipients"], f"{where}.recipients", 1, MAX_PARTIES)
        for recipient in recipients:
            if recipient not in party_names:
                raise ContractError(f"{where}.recipients", "names no party", actual=recipient)
        if len(set(recipients)) != len(recipients):
            raise ContractError(f"{where}.recipients", "duplicate recipient")
        outputs.append(
            OutputSpec(name=name, type="enum", values=values, recipients=tuple(recipients))
        )
    return tuple(outputs)
