"""A party's whole policy: evidence reference values plus model and contract expectations.

One TOML file. The evidence part is ``attestation.policy.Policy`` (``allow_simulated``,
``[snp]``, ``[tdx]``...); this module reads two more tables from it::

    [model]
    root_digest = "9f0c..."      # required: the OMS subject digest the party accepts
    signer = "demo-key:3b1a..."  # required: the model signer identity, or
    # signer = { skip = true }   # deliberately accept any signer of that exact digest

    [contract]
    file = "contract.json"       # the contract this party agreed to (relative to this file), or
    digest = "5e2d..."           # its SHA-256

A session attestation is refused when the policy names no contract: a party
never releases input under a contract it has not pinned.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestation.errors import PolicyError, UsageError
from attestation.policy import Policy
from attestation.text import parse_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelExpectation:
    """The model a party accepts: exact root digest, and the signer unless skipped."""

    root_digest: str
    signer: str | None  # None only when the policy wrote ``signer = { skip = true }``

    @classmethod
    def from_table(cls, table: Any) -> ModelExpectation:
        """Parse ``[model]``; raises UsageError when it is missing or incomplete."""
        if not isinstance(table, Mapping):
            raise UsageError("policy.model", "the policy needs a [model] table with root_digest")
        # `tcme model verify` prints sha256:<hex>; bare hex is accepted too.
        digest = parse_sha256(table.get("root_digest"), "policy.model.root_digest").hex()
        signer = table.get("signer")
        if isinstance(signer, Mapping) and signer == {"skip": True}:
            log.warning("policy skips the model signer check: any signer of %s is accepted", digest)
            return cls(root_digest=digest, signer=None)
        if not isinstance(signer, str) or not signer:
            raise UsageError(
                "policy.model.signer",
                "name the signer identity, or write signer = { skip = true }",
                actual=signer,
            )
        return cls(root_digest=digest, signer=signer)

    def check(self, root_digest: str, signer: str) -> None:
        """Raise PolicyError naming every mismatch between the claims and this expectation."""
        violations = []
        if root_digest.lower() != self.root_digest:
            violations.append(
                PolicyError("model.root_digest", expected=self.root_digest, actual=root_digest)
            )
        if self.signer is not None and signer != self.signer:
            violations.append(PolicyError("model.signer", expected=self.signer, actual=signer))
        if len(violations) == 1:
            raise violations[0]
        if violations:
            raise PolicyError("model", violations=violations)


@dataclass(frozen=True)
class ContractExpectation:
    """The contract a party agreed to: its canonical bytes (from a file) or only its digest."""

    digest: bytes
    source: str

    @classmethod
    def from_table(cls, table: Any, base: Path | None) -> ContractExpectation | None:
        """Parse ``[contract]`` (None when absent); a file is canonicalised, then hashed."""
        if table is None:
            return None
        if not isinstance(table, Mapping) or ("file" in table) == ("digest" in table):
            raise UsageError("policy.contract", "[contract] needs exactly one of file, digest")
        if "digest" in table:
            digest = parse_sha256(table["digest"], "policy.contract.digest")
            return cls(digest=digest, source="policy digest")
        path = Path(table["file"])
        if base is not None and not path.is_absolute():
            path = base / path
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Path) -> ContractExpectation:
        """The contract file ``path`` (TOML or JSON, the one loader ``tcme.contract.loader``),
        canonicalised exactly as the enclave requires."""
        from tcme.contract.loader import load_contract_bytes

        raw = load_contract_bytes(path)
        return cls(digest=hashlib.sha256(raw).digest(), source=str(path))

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
class PartyPolicy:
    """Everything a party checks before it releases an input."""

    evidence: Policy
    model: ModelExpectation
    contract: ContractExpectation | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> PartyPolicy:
        """Build from parsed TOML; relative paths resolve against ``base``."""
        evidence = Policy.from_dict(dict(data))
        return cls(
            evidence=evidence,
            model=ModelExpectation.from_table(data.get("model")),
            contract=ContractExpectation.from_table(data.get("contract"), base),
        )

    @classmethod
    def load(cls, path: Path) -> PartyPolicy:
        """Read a policy TOML file; raises UsageError/ParseError on a bad file."""
        import tomllib

        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise UsageError("policy.read", f"cannot read {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise UsageError("policy.toml", f"{path}: {err}") from err
        return cls.from_dict(data, base=path.parent)

    def with_contract(self, contract: ContractExpectation) -> PartyPolicy:
        """The same policy pinned to ``contract`` (e.g. a contract file given on the CLI)."""
        return PartyPolicy(evidence=self.evidence, model=self.model, contract=contract)
