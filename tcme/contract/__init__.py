"""The tcme contract language: what a Trusted Capable Model Environment promises.

A contract names the parties (with their public keys), each party's inputs and
their constraints, the model turns (prompt templates that reference inputs and
earlier outputs by name), deterministic decoding, and the outputs (enum, GBNF
grammar or JSON Schema), each with the parties allowed to learn it. Explicit
information-flow labels decide which recipient may learn what; agreed public
capability tests measure the loaded model before any input is released.
docs/contracts.md is the reference.

Public API::

    from tcme.contract import load_contract, contract_flows, check_capability

    loaded = load_contract(Path("examples/damage-monitoring"), keys={"reporter": keys, ...})
    loaded.raw, loaded.digest          # canonical bytes and SHA-256 (None for a template)
    contract_flows(loaded.contract)    # every permitted flow, with its ground
    check_capability(policy.min_capability_score, attestation.capability)  # party side

Modules: ``general`` (kind ``general`` parser), ``constraints`` (input types),
``outputs`` (grammar/JSON outputs), ``gbnf`` (grammar checker), ``flow``
(labels and the leak check), ``capability`` (tests, records, policy),
``loader`` (files → canonical bytes), ``schema.json`` (the file format).
"""

from tcme.contract.capability import (
    CapabilityError,
    CapabilityRecord,
    CapabilityTest,
    CaseOutcome,
    check_capability,
    parse_record,
    session_capability,
)
from tcme.contract.flow import Flow, Leak, analyse, check_flows, contract_flows, output_labels
from tcme.contract.loader import (
    LoadedContract,
    contract_file_schema,
    find_contract_file,
    load_contract,
    validate_document,
)

__all__ = [
    "CapabilityError",
    "CapabilityRecord",
    "CapabilityTest",
    "CaseOutcome",
    "Flow",
    "Leak",
    "LoadedContract",
    "analyse",
    "check_capability",
    "check_flows",
    "contract_file_schema",
    "contract_flows",
    "find_contract_file",
    "load_contract",
    "output_labels",
    "parse_record",
    "session_capability",
    "validate_document",
]
