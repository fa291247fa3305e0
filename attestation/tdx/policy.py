"""Does a verified TDX quote meet the party's reference values? (The ``[tdx]`` policy table.)

Properties other than signatures, after go-tdx-guest's ``validate``: TCB status and
advisories from the collateral, the TD's measurements (MRTD, RTMR0-3), the TDX module
(MRSEAM), the owner-chosen identities (MRCONFIGID, MROWNER, MROWNERCONFIG), TD attributes
and XFAM, and REPORT_DATA. ``validate_quote`` checks every rule and reports every violation
at once.

Policy file (the ``[tdx]`` table of the party policy, parsed by ``attestation.policy``)::

    [tdx]
    accepted_tcb_statuses = ["UpToDate"]        # default: UpToDate only
    forbidden_advisory_ids = ["INTEL-SA-00837"]  # default: none
    min_tcb_evaluation_data_number = 17          # default: not checked
    mrtd   = ["<48-byte hex>", ...]              # launch identity: required, or { skip = true }
    rtmr0  = [...]                               # rtmr0 .. rtmr2 likewise required
    rtmr1  = [...]
    rtmr2  = [...]
    rtmr3  = [...]                               # optional: absent = not checked
    mrseam = [...]
    mrconfigid = [...]
    mrowner = [...]
    mrownerconfig = [...]
    td_attributes = ["<8-byte hex>", ...]        # allowed exact values; absent = not checked
    allow_debug = false                          # default false: a DEBUG TD is always rejected
    xfam = ["<8-byte hex>", ...]
    report_data = "<64-byte hex>"                # expected exact value; absent = not checked

Every list is a non-empty list, or ``{ skip = true }`` (an empty list is an error, not a
wildcard). Unknown keys are an error naming the nearest known key, so a misspelt
measurement name never silently turns a check off. The launch identity (MRTD, RTMR0-2)
must be pinned or skipped when the policy accepts ``tdx``: ``attestation.policy.Policy``
checks that through ``missing_identity()``. The REPORT_DATA binding is checked by the
verifier, in one place for every kind, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from attestation.errors import PolicyError, UsageError
from attestation.policy_values import Skip, check_keys, hex_converter, pinned
from attestation.tdx.abi import ATTRIBUTES_SIZE, MEASUREMENT_SIZE, REPORT_DATA_SIZE, TdQuoteBody
from attestation.tdx.verify import TCB_STATUS_REVOKED, VerifiedQuote
from attestation.text import parse_hex

# Every status a TDX TCB Info (v3) level can carry. "Revoked" is never acceptable.
KNOWN_TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
    TCB_STATUS_REVOKED,
)
DEFAULT_TCB_STATUSES = ("UpToDate",)
# The TD's launch identity: what a policy accepting TDX must pin or skip explicitly.
LAUNCH_IDENTITY = ("mrtd", "rtmr0", "rtmr1", "rtmr2")
TDX_MEASURE_HINT = (
    "`tcme measure tdx --from-quote QUOTE` prints the [tdx] values of a reference launch"
)

# policy key -> (TdQuoteBody attribute, size in bytes)
_MEASUREMENTS: dict[str, tuple[str, int]] = {
    "mrtd": ("mr_td", MEASUREMENT_SIZE),
    "rtmr0": ("rtmr0", MEASUREMENT_SIZE),
    "rtmr1": ("rtmr1", MEASUREMENT_SIZE),
    "rtmr2": ("rtmr2", MEASUREMENT_SIZE),
    "rtmr3": ("rtmr3", MEASUREMENT_SIZE),
    "mrseam": ("mr_seam", MEASUREMENT_SIZE),
    "mrconfigid": ("mr_config_id", MEASUREMENT_SIZE),
    "mrowner": ("mr_owner", MEASUREMENT_SIZE),
    "mrownerconfig": ("mr_owner_config", MEASUREMENT_SIZE),
    "td_attributes": ("td_attributes", ATTRIBUTES_SIZE),
    "xfam": ("xfam", ATTRIBUTES_SIZE),
}


@dataclass(frozen=True)
class TdxPolicy:
    """Reference values for TDX quotes. ``None`` = not checked, ``SKIP`` = skipped explicitly."""

    accepted_tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    forbidden_advisory_ids: tuple[str, ...] = ()
    min_tcb_evaluation_data_number: int | None = None
    mrtd: tuple[bytes, ...] | Skip | None = None
    rtmr0: tuple[bytes, ...] | Skip | None = None
    rtmr1: tuple[bytes, ...] | Skip | None = None
    rtmr2: tuple[bytes, ...] | Skip | None = None
    rtmr3: tuple[bytes, ...] | Skip | None = None
    mrseam: tuple[bytes, ...] | Skip | None = None
    mrconfigid: tuple[bytes, ...] | Skip | None = None
    mrowner: tuple[bytes, ...] | Skip | None = None
    mrownerconfig: tuple[bytes, ...] | Skip | None = None
    td_attributes: tuple[bytes, ...] | Skip | None = None
    allow_debug: bool = False
    xfam: tuple[bytes, ...] | Skip | None = None
    report_data: bytes | None = None

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None) -> TdxPolicy:
        """Build from the ``[tdx]`` TOML table (None or empty: the defaults); UsageError if bad."""
        table = dict(table or {})
        check_keys(table, [f.name for f in fields(cls)], "policy.tdx")
        values: dict[str, Any] = {}
        if "accepted_tcb_statuses" in table:
            statuses = _strings(table["accepted_tcb_statuses"], "accepted_tcb_statuses")
            for status in statuses:
                if status not in KNOWN_TCB_STATUSES:
                    raise UsageError(
                        "policy.tdx.accepted_tcb_statuses",
                        "unknown TCB status",
                        expected=list(KNOWN_TCB_STATUSES),
                        actual=status,
                    )
                if status == TCB_STATUS_REVOKED:
                    raise UsageError(
                        "policy.tdx.accepted_tcb_statuses", "a revoked TCB is never acceptable"
                    )
            if not statuses:
                raise UsageError(
                    "policy.tdx.accepted_tcb_statuses", "an empty list would reject everything"
                )
            values["accepted_tcb_statuses"] = statuses
        if "forbidden_advisory_ids" in table:
            values["forbidden_advisory_ids"] = _strings(
                table["forbidden_advisory_ids"], "forbidden_advisory_ids"
            )
        if "min_tcb_evaluation_data_number" in table:
            number = table["min_tcb_evaluation_data_number"]
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise UsageError(
                    "policy.tdx.min_tcb_evaluation_data_number",
                    "expected a non-negative integer",
                    actual=number,
                )
            values["min_tcb_evaluation_data_number"] = number
        for key, (_, size) in _MEASUREMENTS.items():
            if key in table:
                how = TDX_MEASURE_HINT if key in LAUNCH_IDENTITY else ""
                values[key] = pinned(table[key], f"policy.tdx.{key}", hex_converter(size), how=how)
        if "allow_debug" in table:
            if not isinstance(table["allow_debug"], bool):
                raise UsageError(
                    "policy.tdx.allow_debug", "expected true or false", actual=table["allow_debug"]
                )
            values["allow_debug"] = table["allow_debug"]
        if "report_data" in table:
            if not isinstance(table["report_data"], str):
                raise UsageError("policy.tdx.report_data", "expected a hex string")
            values["report_data"] = parse_hex(
                table["report_data"], "policy.tdx.report_data", size=REPORT_DATA_SIZE
            )
        return cls(**values)

    def unchecked(self) -> list[str]:
        """Names of the reference values this policy leaves unchecked (for display)."""
        names = [key for key in _MEASUREMENTS if not isinstance(getattr(self, key), tuple)]
        if self.report_data is None:
            names.append("report_data")
        return names

    def missing_identity(self) -> list[str]:
        """Launch-identity keys neither pinned nor skipped, each with how to set it."""
        return [
            f'{key}: pin it with {key} = ["<96 hex>"] ({TDX_MEASURE_HINT}), or skip the check '
            f"explicitly with {key} = {{ skip = true }}"
            for key in LAUNCH_IDENTITY
            if getattr(self, key) is None
        ]

    def skipped(self) -> list[str]:
        """Keys this table sets to ``{ skip = true }``."""
        return [key for key in _MEASUREMENTS if isinstance(getattr(self, key), Skip)]


def validate_quote(verified: VerifiedQuote, policy: TdxPolicy) -> None:
    """Raise ``PolicyError`` listing every violation of ``policy`` (the binding is the
    verifier's: ``attestation.verifier`` checks REPORT_DATA for every kind in one place)."""
    violations: list[PolicyError] = []
    body = verified.quote.body

    if verified.tcb_status not in policy.accepted_tcb_statuses:
        accepted = ", ".join(policy.accepted_tcb_statuses)
        violations.append(
            PolicyError(
                "tcb_status",
                f"{verified.tcb_status} not in [{accepted}]",
                expected=f"one of [{accepted}]",
                actual=verified.tcb_status,
            )
        )
    forbidden = sorted(set(verified.advisory_ids) & set(policy.forbidden_advisory_ids))
    if forbidden:
        violations.append(
            PolicyError(
                "advisory_ids",
                f"forbidden advisories apply: {', '.join(forbidden)}",
                expected=f"none of [{', '.join(policy.forbidden_advisory_ids)}]",
                actual=", ".join(verified.advisory_ids),
            )
        )
    minimum = policy.min_tcb_evaluation_data_number
    if minimum is not None:
        number = verified.tcb_evaluation_data_number
        if number is None or number < minimum:
            violations.append(
                PolicyError(
                    "tcb_evaluation_data_number",
                    "collateral older than the required TCB recovery",
                    expected=f">= {minimum}",
                    actual=number,
                )
            )
    if body.debug and not policy.allow_debug:
        violations.append(
            PolicyError(
                "td_attributes.debug",
                "the TD is debuggable (TDATTRIBUTES.DEBUG set)",
                expected="DEBUG clear",
                actual=f"td_attributes {body.td_attributes.hex()}",
            )
        )
    for key, (attribute, _) in _MEASUREMENTS.items():
        allowed = getattr(policy, key)
        if not isinstance(allowed, tuple):  # None: not checked; SKIP: skipped explicitly
            continue
        actual = _body_field(body, attribute)
        if actual not in allowed:
            violations.append(
                PolicyError(
                    key,
                    "not an allowed value",
                    expected=" or ".join(v.hex() for v in allowed),
                    actual=actual,
                )
            )
    if policy.report_data is not None and body.report_data != policy.report_data:
        violations.append(
            PolicyError(
                "report_data",
                "REPORT_DATA differs from the policy's",
                expected=policy.report_data,
                actual=body.report_data,
            )
        )
    if violations:
        raise PolicyError("tdx_policy", violations=violations)


def _body_field(body: TdQuoteBody, attribute: str) -> bytes:
    if attribute.startswith("rtmr"):
        return body.rtmrs[int(attribute[4:])]
    value: bytes = getattr(body, attribute)  # a bytes field named in _MEASUREMENTS
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UsageError(f"policy.tdx.{key}", "expected a string or a list of strings", actual=value)
