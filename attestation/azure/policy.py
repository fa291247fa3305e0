"""The ``[azure]`` policy table: reference values for Azure vTPM evidence.

::

    [azure.snp]            # az-snp-vtpm: the same keys and rules as [snp], applied
    minimum_tcb = { ... }  # to the SEV-SNP report the paravisor embeds
    [azure.tdx]            # az-tdx-vtpm: the same keys and rules as [tdx], applied
    mrtd = ["..."]         # to the TD quote
    [azure.pcrs]           # the vTPM's SHA-256 PCRs the quote covers
    "4" = ["<64 hex>", ...]     # pinned: one of these values
    "7" = "<64 hex>"            # a single value is a one-element list
    "11" = { skip = true }      # deliberately not checked
    others = { skip = true }    # every PCR not named above, skipped explicitly
    [azure.vm_configuration]    # optional: exact values of the runtime data's claims
    "secure-boot" = true
    "console-enabled" = false

Fail closed: a party that has no ``[azure]`` table accepts no Azure evidence;
the paravisor's launch measurement in ``[azure.snp]`` (``allowed_measurements``)
or ``[azure.tdx]`` (``mrtd``, ``rtmr0``..``rtmr2``) is pinned or skipped as in
``[snp]``/``[tdx]``, and evidence whose hardware has no table is refused; and
``[azure.pcrs]`` must say something about every PCR 0..23 (a value, a
skip, or ``others = { skip = true }``), or the whole table is
``pcrs = { skip = true }``; a PCR left unsaid is a policy error at load time,
never "anything". An empty list is an error, not a wildcard. The embedded SNP
report must come from VMPL 0 (the paravisor's level) whatever the table says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attestation.errors import PolicyError, UsageError
from attestation.policy_values import check_keys, to_hex_bytes

PCR_COUNT = 24
PCR_SIZE = 32
OTHERS = "others"
KEYS = ("snp", "tdx", "pcrs", "vm_configuration")


@dataclass(frozen=True)
class PcrRule:
    """One PCR's reference: ``allowed`` values, or ``skip`` (deliberately unchecked)."""

    allowed: tuple[bytes, ...] = ()
    skip: bool = False


@dataclass(frozen=True)
class AzurePolicy:
    """Parsed ``[azure]``. ``snp``/``tdx``: the hardware tables, parsed by the owners of
    ``[snp]`` and ``[tdx]`` (``SnpPolicy``/``TdxPolicy``), None when absent."""

    snp: Any = None
    tdx: Any = None
    pcrs: Mapping[int, PcrRule] = field(default_factory=dict)
    vm_configuration: Mapping[str, bool | str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path | None = None) -> AzurePolicy:
        """Build from the ``[azure]`` table; ``UsageError`` naming the bad key or PCR.

        ``base``: the policy file's folder (``[azure.snp]`` paths resolve against it).
        """
        from attestation.policy import SnpPolicy  # attestation.policy registers this table
        from attestation.tdx.policy import TdxPolicy

        if not isinstance(data, Mapping):
            raise UsageError("policy.azure", "must be a table", actual=type(data).__name__)
        check_keys(data, KEYS, "policy.azure")  # names the nearest key of a typo
        for key in ("snp", "tdx"):
            if key in data and not isinstance(data[key], Mapping):
                raise UsageError(f"policy.azure.{key}", "must be a table", actual=data[key])
        if "pcrs" not in data:
            raise UsageError(
                "policy.azure.pcrs",
                "[azure.pcrs] is required: pin the PCR values or skip them explicitly",
                expected='[azure.pcrs] with "0".."23" / others, or pcrs = { skip = true }',
                actual="absent",
            )
        vm_configuration = data.get("vm_configuration", {})
        if not isinstance(vm_configuration, Mapping) or not all(
            isinstance(v, bool | str) for v in vm_configuration.values()
        ):
            raise UsageError(
                "policy.azure.vm_configuration",
                "a table of exact true/false or string values",
                actual=repr(vm_configuration)[:80],
            )
        return cls(
            snp=_prefixed(lambda: SnpPolicy.from_dict(data["snp"], base))
            if "snp" in data
            else None,
            tdx=_prefixed(lambda: TdxPolicy.from_dict(data["tdx"])) if "tdx" in data else None,
            pcrs=parse_pcr_rules(data["pcrs"]),
            vm_configuration=dict(vm_configuration),
        )

    @classmethod
    def unsafe_authenticity_only(cls) -> AzurePolicy:
        """Every PCR skipped and the hardware tables' defaults (no launch identity): for
        ``Policy.unsafe_authenticity_only`` only, never to release a secret."""
        from attestation.policy import SnpPolicy
        from attestation.tdx.policy import TdxPolicy

        return cls(snp=SnpPolicy(), tdx=TdxPolicy(), pcrs=parse_pcr_rules({"skip": True}))

    def missing_identity(self) -> list[str]:
        """The launch identity neither pinned nor skipped: the paravisor's measurement in
        ``[azure.snp]``/``[azure.tdx]`` (their own rules). The PCRs are checked by
        ``from_dict`` already."""
        if self.snp is None and self.tdx is None:
            return [
                "snp: pin the paravisor's launch measurement with [azure.snp] "
                'allowed_measurements = ["<96 hex>"] (az-snp-vtpm) or [azure.tdx] mrtd, '
                "rtmr0..2 (az-tdx-vtpm), or skip them explicitly with { skip = true }"
            ]
        missing = [f"snp.{m}" for m in self.snp.missing_identity()] if self.snp else []
        return missing + ([f"tdx.{m}" for m in self.tdx.missing_identity()] if self.tdx else [])

    def skipped(self) -> list[str]:
        """Keys skipped with ``{ skip = true }``: ``pcrs`` or ``pcrs.N``, ``snp.*``, ``tdx.*``."""
        if self.pcrs and all(rule.skip for rule in self.pcrs.values()):
            out = ["pcrs"]
        else:
            out = [f"pcrs.{index}" for index, rule in sorted(self.pcrs.items()) if rule.skip]
        for name, table in (("snp", self.snp), ("tdx", self.tdx)):
            if table is not None:
                out += [f"{name}.{key}" for key in table.skipped()]
        return out

    def check_vm_configuration(self, claims: Mapping[str, Any]) -> list[PolicyError]:
        """Every ``[azure.vm_configuration]`` value the runtime data does not carry exactly."""
        violations = []
        for key, expected in self.vm_configuration.items():
            actual = claims.get(key, "absent")
            if type(actual) is not type(expected) or actual != expected:
                violations.append(
                    PolicyError(
                        f"azure.vm_configuration.{key}",
                        "the paravisor's VM configuration differs",
                        expected=expected,
                        actual=actual,
                    )
                )
        return violations

    def check_pcrs(self, pcrs: Sequence[bytes], covered: Sequence[int]) -> list[PolicyError]:
        """Every violation of the PCR rules by the quoted PCRs (``covered``: the quote's)."""
        violations: list[PolicyError] = []
        for index in range(PCR_COUNT):
            rule = self.pcrs[index]
            if rule.skip:
                continue
            if index not in covered:
                violations.append(
                    PolicyError(
                        f"azure.pcr{index}",
                        "the policy pins this PCR but the quote does not cover it",
                        expected="covered by the quote",
                        actual="not selected",
                    )
                )
            elif pcrs[index] not in rule.allowed:
                violations.append(
                    PolicyError(
                        f"azure.pcr{index}",
                        "PCR value is not one the policy pins",
                        expected=" or ".join(v.hex() for v in rule.allowed),
                        actual=pcrs[index],
                    )
                )
        return violations


def _prefixed(parse: Callable[[], Any]) -> Any:
    """Run a hardware table's own parser; its errors name ``policy.azure.*``."""
    try:
        return parse()
    except UsageError as err:
        if err.check.startswith("policy."):
            err.check = "policy.azure." + err.check.removeprefix("policy.")
        raise


def parse_pcr_rules(value: Any) -> dict[int, PcrRule]:
    """The 24 PCR rules of ``[azure.pcrs]`` (see module doc)."""
    if _is_skip(value):
        return {i: PcrRule(skip=True) for i in range(PCR_COUNT)}
    if not isinstance(value, Mapping):
        raise UsageError("policy.azure.pcrs", "must be a table or { skip = true }", actual=value)
    rules: dict[int, PcrRule] = {}
    others: PcrRule | None = None
    for key, rule in value.items():
        check = f"policy.azure.pcrs.{key}"
        if key == OTHERS:
            if not _is_skip(rule):
                raise UsageError(check, "others can only be skipped", expected="{ skip = true }")
            others = PcrRule(skip=True)
            continue
        if not (isinstance(key, str) and key.isdigit() and int(key) < PCR_COUNT):
            raise UsageError(check, "not a PCR index", expected="0..23 or others", actual=key)
        rules[int(key)] = PcrRule(skip=True) if _is_skip(rule) else PcrRule(_values(rule, check))
    missing = [i for i in range(PCR_COUNT) if i not in rules]
    if missing and others is None:
        raise UsageError(
            "policy.azure.pcrs",
            "PCRs left unsaid (pin them, skip them, or add others = { skip = true })",
            expected="a rule for every PCR 0..23",
            actual="no rule for " + ", ".join(map(str, missing)),
        )
    return {i: rules.get(i) or PcrRule(skip=True) for i in range(PCR_COUNT)}


def _values(value: Any, check: str) -> tuple[bytes, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise UsageError(
            check, "a PCR value, a non-empty list, or { skip = true }", actual=repr(value)
        )
    return tuple(to_hex_bytes(text, check, PCR_SIZE) for text in values)


def _is_skip(value: Any) -> bool:
    return isinstance(value, Mapping) and dict(value) == {"skip": True}
