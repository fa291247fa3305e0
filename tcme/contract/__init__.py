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

Modules: ``model`` (the parsed ``Contract`` and its parts, ``ContractKind``),
``parse`` (canonical bytes → ``Contract``, one parser per kind: ``enum_decision``,
``general``), ``parts`` (parties, inputs, decoding), ``constraints`` (the one
input-type system), ``outputs`` (grammar/JSON outputs), ``regex`` (RE2 for every
contract pattern), ``jsonschema_check``, ``gbnf`` (grammar checker), ``template``
(prompt placeholders), ``flow`` (labels and the leak check), ``capability``
(tests, records, token budget, policy), ``loader`` (TOML/JSON files → canonical
bytes, the one loader every command uses), ``schema.json`` (the file format).

This package is the contract model; ``tcme.wire`` depends on it, never the
reverse (docs/architecture.md, "Imports").
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
from tcme.contract.errors import ContractError, InputError, OutputValueError
from tcme.contract.flow import Flow, Leak, analyse, check_flows, contract_flows, output_labels
from tcme.contract.loader import (
    LoadedContract,
    contract_file_schema,
    find_contract_file,
    load_contract,
    load_contract_bytes,
    validate_document,
)
from tcme.contract.model import Contract, ContractKind, InputSpec, OutputSpec, Party
from tcme.contract.parse import canonical_contract, contract_digest, parse_contract

__all__ = [
    "CapabilityError",
    "CapabilityRecord",
    "CapabilityTest",
    "CaseOutcome",
    "Contract",
    "ContractError",
    "ContractKind",
    "Flow",
    "InputError",
    "InputSpec",
    "Leak",
    "LoadedContract",
    "OutputSpec",
    "OutputValueError",
    "Party",
    "analyse",
    "canonical_contract",
    "check_capability",
    "check_flows",
    "contract_digest",
    "contract_file_schema",
    "contract_flows",
    "find_contract_file",
    "load_contract",
    "load_contract_bytes",
    "output_labels",
    "parse_contract",
    "parse_record",
    "session_capability",
    "validate_document",
]
