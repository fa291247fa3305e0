"""Information flow: which party may learn a value derived from which input.

Labels. Every input is its own label atom, owned by the party that provides
it. An output's label is the union of the labels of everything its prompt
references: inputs directly, earlier outputs through their own labels. The
analysis is conservative: a referenced value counts as fully used. Each turn
runs in a fresh model context (enclave.inference erases it between turns), so
nothing reaches a turn except through its prompt.

Rule. Output ``o`` may be sealed to recipient ``R`` only if, for every input
``i`` in ``label(o)``, one of these holds:

1. ``R`` owns ``i``;
2. ``R`` is in ``i.may_flow_to`` (the owner lets anything derived from ``i``
   reach ``R``);
3. ``o.declassify[i]`` names ``R`` (the contract, which the owner signs off by
   agreeing to its digest, releases this one output to ``R``).

A contract that breaks the rule is refused when parsed, by ``tcme contract
check``, by every party, and by the enclave at CreateSession, with check
``contract.flow`` and every offending flow:
``output 'x' derived from alice.secret may not reach carol``.
Outputs with no recipients are internal: they are never sealed, only used by
later turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcme.contract.errors import ContractError
from tcme.contract.model import Contract, InputSpec, OutputSpec

GROUNDS = ("owner", "may_flow_to", "declassify")


@dataclass(frozen=True)
class Flow:
    """One permitted flow: ``source`` input reaches ``recipient`` through ``output``."""

    output: str
    recipient: str
    source: str
    owner: str
    ground: str  # one of GROUNDS


@dataclass(frozen=True)
class Leak:
    """A flow the contract does not permit."""

    output: str
    recipient: str
    source: str
    owner: str

    def describe(self) -> str:
        """``output 'x' derived from alice.secret may not reach carol``."""
        return (
            f"output {self.output!r} derived from {self.owner}.{self.source} "
            f"may not reach {self.recipient}"
        )


def output_labels(
    inputs: tuple[InputSpec, ...], outputs: tuple[OutputSpec, ...]
) -> dict[str, frozenset[str]]:
    """``{output name: input names it is derived from}``, in output order."""
    input_names = {spec.name for spec in inputs}
    labels: dict[str, frozenset[str]] = {}
    for out in outputs:
        if out.turn is None:
            raise ContractError("contract.flow", f"output {out.name!r} has no model turn")
        label: set[str] = set()
        for ref in out.turn.references:
            if ref in input_names:
                label.add(ref)
            elif ref in labels:
                label |= labels[ref]
            else:
                raise ContractError(
                    "contract.flow",
                    f"output {out.name!r} references {ref!r}, which is neither an input "
                    "nor an earlier output",
                )
        labels[out.name] = frozenset(label)
    return labels


def analyse(
    inputs: tuple[InputSpec, ...], outputs: tuple[OutputSpec, ...]
) -> tuple[list[Flow], list[Leak]]:
    """Every (output, recipient, source input) triple, as a permitted flow or a leak."""
    by_name = {spec.name: spec for spec in inputs}
    labels = output_labels(inputs, outputs)
    flows: list[Flow] = []
    leaks: list[Leak] = []
    for out in outputs:
        declassified = dict(out.declassify)
        for recipient in out.recipients:
            for source in sorted(labels[out.name]):
                spec = by_name[source]
                if recipient == spec.party:
                    ground = "owner"
                elif recipient in spec.may_flow_to:
                    ground = "may_flow_to"
                elif recipient in declassified.get(source, ()):
                    ground = "declassify"
                else:
                    leaks.append(Leak(out.name, recipient, source, spec.party))
                    continue
                flows.append(Flow(out.name, recipient, source, spec.party, ground))
    return flows, leaks


def check_flows(inputs: tuple[InputSpec, ...], outputs: tuple[OutputSpec, ...]) -> list[Flow]:
    """The permitted flows; raises ``ContractError("contract.flow", ...)`` listing every leak.

    Also refuses a ``declassify`` entry that names an input the output is not
    derived from, or a party that is not one of the output's recipients: such an
    entry releases nothing and most likely means the author meant another output.
    """
    labels = output_labels(inputs, outputs)
    for out in outputs:
        for source, parties in out.declassify:
            if source not in labels[out.name]:
                raise ContractError(
                    "contract.flow",
                    f"output {out.name!r} declassifies {source!r} but is not derived from it",
                )
            stray = sorted(set(parties) - set(out.recipients))
            if stray:
                raise ContractError(
                    "contract.flow",
                    f"output {out.name!r} declassifies {source!r} to non-recipient(s) "
                    f"{', '.join(stray)}",
                )
    flows, leaks = analyse(inputs, outputs)
    if leaks:
        raise ContractError(
            "contract.flow",
            "; ".join(leak.describe() for leak in leaks),
            expected="every recipient allowed by owner, may_flow_to or declassify",
            actual=f"{len(leaks)} forbidden flow(s)",
        )
    return flows


def contract_flows(contract: Contract) -> list[Flow]:
    """Permitted flows of a parsed ``general`` contract (empty for ``enum-decision``).

    ``enum-decision`` has no labels: its one output goes to exactly the listed
    recipients, which every party agreed to by agreeing to the digest.
    """
    if not contract.has_turns:
        return []
    return check_flows(contract.inputs, contract.outputs)
