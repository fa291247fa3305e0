"""A party's whole policy file: evidence reference values, plus the model and the contract.

One TOML file, one parser: ``attestation.policy.parse_policy_document`` reads every
top-level name (the evidence keys and tables, and the two tables of this module,
registered through its ``app_tables``) and refuses any it does not know, naming the
nearest known one. This module types its two tables::

    [model]
    root_digest = "sha256:9f0c..."  # required: the OMS subject digest (with or without sha256:)
    signer = "sha256:3b1a..."       # required: the model signer identity (a key's with or
                                    # without sha256:, as for digests), or
    # signer = { skip = true }      # deliberately accept any signer of that exact digest

    [contract]
    file = "contract.json"          # the contract this party agreed to (relative to this file), or
    digest = "5e2d..."              # its SHA-256
    min_capability_score = 0.8      # optional: the least share of the contract's tests passed

A session attestation is refused when the policy names no contract: a party
never releases input under a contract it has not pinned.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from attestation.errors import PolicyError, UsageError
from attestation.policy import Policy, parse_policy_document, read_policy_toml
from attestation.policy_values import check_keys, expect_table, is_skip
from attestation.text import format_sha256, parse_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelExpectation:
    """The model a party accepts: exact root digest, and the signer unless skipped."""

    root_digest: str
    signer: str | None  # None only when the policy wrote ``signer = { skip = true }``

    @classmethod
    def from_table(cls, table: Any, base: Path | None = None) -> ModelExpectation:
        """Parse ``[model]``; raises UsageError when it is malformed or incomplete."""
        del base  # no paths in [model]
        expect_table(table, "policy.model")
        check_keys(table, ("root_digest", "signer"), "policy.model")
        # `tcme model verify` prints sha256:<hex>; bare hex is accepted too.
        digest = parse_sha256(table.get("root_digest"), "policy.model.root_digest").hex()
        signer = table.get("signer")
        if is_skip(signer):
            log.warning("policy skips the model signer check: any signer of %s is accepted", digest)
            return cls(root_digest=digest, signer=None)
        if not isinstance(signer, str) or not signer:
            raise UsageError(
                "policy.model.signer",
                "name the signer identity (`tcme model verify` prints it), "
                "or write signer = { skip = true }",
                actual=signer if signer is None else repr(signer),
            )
        return cls(root_digest=digest, signer=_signer_identity(signer))

    def skipped(self) -> list[str]:
        """``["signer"]`` when the signer check is skipped."""
        return ["signer"] if self.signer is None else []

    def check(self, root_digest: str, signer: str) -> None:
        """Raise PolicyError naming every mismatch between the claims and this expectation."""
        violations = []
        if root_digest.lower() != self.root_digest:
            violations.append(
                PolicyError(
                    "model.root_digest",
                    "the enclave serves another model than the policy names",
                    expected=self.root_digest,
                    actual=root_digest,
                )
            )
        if self.signer is not None and _signer_identity(signer) != self.signer:
            violations.append(
                PolicyError(
                    "model.signer",
                    "the model was signed by another signer than the policy names",
                    expected=self.signer,
                    actual=signer,
                )
            )
        if len(violations) == 1:
            raise violations[0]
        if violations:
            raise PolicyError("model", violations=violations)


def _signer_identity(signer: str) -> str:
    """A signer as compared: a key's ``sha256:<hex>`` (written with or without the prefix,
    in any case) in its printed form; a certificate or Sigstore identity as written."""
    try:
        return format_sha256(parse_sha256(signer, "policy.model.signer"))
    except UsageError:
        return signer  # not a key fingerprint: a certificate SAN or a Sigstore identity


@dataclass(frozen=True)
class ContractExpectation:
    """The contract a party agreed to: its canonical bytes (from a file) or only its digest."""

    digest: bytes
    source: str
    file: Path | None = None  # the contract file, when the policy pins one by its file

    @classmethod
    def from_file(cls, path: Path) -> ContractExpectation:
        """The contract file ``path`` (TOML or JSON, the one loader ``tcme.contract.loader``),
        canonicalised exactly as the enclave requires."""
        from tcme.contract.loader import load_contract_bytes

        raw = load_contract_bytes(path)
        return cls(digest=hashlib.sha256(raw).digest(), source=str(path), file=Path(path))

    def check(self, digest: bytes) -> None:
        """Raise PolicyError unless ``digest`` is the agreed contract's."""
        if digest != self.digest:
            raise PolicyError(
                "contract.digest",
                f"the session's contract is not the one agreed ({self.source})",
                expected=self.digest.hex(),
                actual=digest.hex(),
            )


@dataclass(frozen=True)
class ContractTable:
    """The parsed ``[contract]`` table: the pinned contract (if any) and the minimum score."""

    contract: ContractExpectation | None
    min_capability_score: float | None

    @classmethod
    def from_table(cls, table: Any, base: Path | None) -> ContractTable:
        """Parse ``[contract]``; a file is canonicalised, then hashed."""
        expect_table(table, "policy.contract")
        check_keys(table, ("file", "digest", "min_capability_score"), "policy.contract")
        if not table:
            raise UsageError(
                "policy.contract",
                "an empty [contract] pins nothing: give file or digest (and optionally "
                "min_capability_score), or remove the table",
                actual="{}",
            )
        if "file" in table and "digest" in table:
            raise UsageError(
                "policy.contract", "[contract] takes one of file, digest, not both", actual="both"
            )
        contract = None
        if "digest" in table:
            digest = parse_sha256(table["digest"], "policy.contract.digest")
            contract = ContractExpectation(digest=digest, source="policy digest")
        elif "file" in table:
            if not isinstance(table["file"], str) or not table["file"]:
                raise UsageError(
                    "policy.contract.file", "must be a file path", actual=table["file"]
                )
            path = Path(table["file"])
            if base is not None and not path.is_absolute():
                path = base / path
            contract = ContractExpectation.from_file(path)
        minimum = table.get("min_capability_score")
        if minimum is not None and (
            isinstance(minimum, bool)
            or not isinstance(minimum, int | float)
            or not 0 <= minimum <= 1
        ):
            raise UsageError(
                "policy.contract.min_capability_score", "a number from 0 to 1", actual=minimum
            )
        return cls(contract, None if minimum is None else float(minimum))


_APP_TABLES: dict[str, Callable[[Any, Path | None], Any]] = {
    "model": ModelExpectation.from_table,
    "contract": ContractTable.from_table,
}


@dataclass(frozen=True)
class PartyPolicy:
    """Everything a party checks before it releases an input."""

    evidence: Policy
    model: ModelExpectation
    contract: ContractExpectation | None
    min_capability_score: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> PartyPolicy:
        """Build from parsed TOML; relative paths resolve against ``base``."""
        evidence, tables = parse_policy_document(data, base=base, app_tables=_APP_TABLES)
        model = tables.get("model")
        if model is None:
            raise UsageError(
                "policy.model",
                "the policy needs a [model] table: root_digest and signer "
                "(both printed by `tcme model verify`)",
                expected="[model]",
                actual="absent",
            )
        contract = tables.get("contract") or ContractTable(None, None)
        return cls(
            evidence=evidence,
            model=model,
            contract=contract.contract,
            min_capability_score=contract.min_capability_score,
        )

    @classmethod
    def load(cls, path: Path) -> PartyPolicy:
        """Read a policy TOML file; raises UsageError on a bad file."""
        path = Path(path)
        return cls.from_dict(read_policy_toml(path), base=path.parent)

    def with_contract(self, contract: ContractExpectation) -> PartyPolicy:
        """The same policy pinned to ``contract`` (e.g. a contract file given on the CLI)."""
        return replace(self, contract=contract)

    def skipped(self) -> list[str]:
        """Every reference value this policy skips, as ``table.key``."""
        return self.evidence.skipped() + [f"model.{k}" for k in self.model.skipped()]


def load_evidence_policy(path: Path) -> Policy:
    """The evidence part of a party policy file (``tcme evidence verify --policy``).

    The whole file is parsed and checked by the same parser; ``[model]`` and
    ``[contract]`` may be absent (a reference-values file from ``tcme measure``).
    """
    path = Path(path)
    evidence, _ = parse_policy_document(
        read_policy_toml(path), base=path.parent, app_tables=_APP_TABLES
    )
    return evidence
