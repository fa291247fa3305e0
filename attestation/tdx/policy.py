"""Does a verified TDX quote meet the party's reference values? (The ``[tdx]`` policy table.)

Properties other than signatures, after go-tdx-guest's ``validate``: TCB status and
advisories from the collateral, the TD's measurements (MRTD, RTMR0-3), the TDX module
(MRSEAM), the owner-chosen identities (MRCONFIGID, MROWNER, MROWNERCONFIG), TD attributes
and XFAM, and REPORT_DATA. ``validate_quote`` checks every rule and reports every violation
at once.

Policy file (the ``[tdx]`` table of the reference-values TOML)::

    [tdx]
    accepted_tcb_statuses = ["UpToDate"]        # default: UpToDate only
    forbidden_advisory_ids = ["INTEL-SA-00837"]  # default: none
    min_tcb_evaluation_data_number = 17          # default: not checked
    mrtd   = ["<48-byte hex>", ...]              # allowed values; absent = not checked
    rtmr0  = [...]                               # rtmr0 .. rtmr3, likewise
    mrseam = [...]
    mrconfigid = [...]
    mrowner = [...]
    mrownerconfig = [...]
    td_attributes = ["<8-byte hex>", ...]        # allowed exact values; absent = not checked
    allow_debug = false                          # default false: a DEBUG TD is always rejected
    xfam = ["<8-byte hex>", ...]
    report_data = "<64-byte hex>"                # expected exact value; absent = not checked

A list field also takes a single string. Unknown keys are an error, so a misspelt
measurement name never silently turns a check off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from attestation.errors import BindingError, PolicyError, UsageError
from attestation.tdx.abi import ATTRIBUTES_SIZE, MEASUREMENT_SIZE, REPORT_DATA_SIZE
from attestation.tdx.verify import TCB_STATUS_REVOKED, VerifiedQuote

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
    """Reference values for TDX quotes. A ``None`` allow-list means "not checked"."""

    accepted_tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    forbidden_advisory_ids: tuple[str, ...] = ()
    min_tcb_evaluation_data_number: int | None = None
    mrtd: tuple[bytes, ...] | None = None
    rtmr0: tuple[bytes, ...] | None = None
    rtmr1: tuple[bytes, ...] | None = None
    rtmr2: tuple[bytes, ...] | None = None
    rtmr3: tuple[bytes, ...] | None = None
    mrseam: tuple[bytes, ...] | None = None
    mrconfigid: tuple[bytes, ...] | None = None
    mrowner: tuple[bytes, ...] | None = None
    mrownerconfig: tuple[bytes, ...] | None = None
    td_attributes: tuple[bytes, ...] | None = None
    allow_debug: bool = False
    xfam: tuple[bytes, ...] | None = None
    report_data: bytes | None = None

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None) -> TdxPolicy:
        """Build from the ``[tdx]`` TOML table (None or empty: the defaults); UsageError if bad."""
        table = dict(table or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise UsageError(
                "policy.tdx", "unknown keys in [tdx]", expected=sorted(known), actual=unknown
            )
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
                values[key] = tuple(_hex(v, key, size) for v in _strings(table[key], key))
                if not values[key]:
                    raise UsageError(f"policy.tdx.{key}", "an empty allow-list rejects everything")
        if "allow_debug" in table:
            if not isinstance(table["allow_debug"], bool):
                raise UsageError(
                    "policy.tdx.allow_debug", "expected true or false", actual=table["allow_debug"]
                )
            values["allow_debug"] = table["allow_debug"]
        if "report_data" in table:
            if not isinstance(table["report_data"], str):
                raise UsageError("policy.tdx.report_data", "expected a hex string")
            values["report_data"] = _hex(table["report_data"], "report_data", REPORT_DATA_SIZE)
        return cls(**values)

    def unchecked(self) -> list[str]:
        """Names of the reference values this policy leaves unchecked (for display)."""
        names = [key for key in _MEASUREMENTS if getattr(self, key) is None]
        if self.report_data is None:
            names.append("report_data")
        return names


def validate_quote(
    verified: VerifiedQuote,
    policy: TdxPolicy,
    *,
    expected_report_data: bytes | None = None,
) -> None:
    """Raise ``PolicyError`` listing every violation, then ``BindingError`` on a REPORT_DATA
    mismatch with ``expected_report_data`` (the value the caller recomputed)."""
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
        if allowed is None:
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

    if expected_report_data is not None and body.report_data != expected_report_data:
        raise BindingError(
            "report_data",
            "REPORT_DATA does not bind the expected claims, contract and nonce",
            expected=expected_report_data,
            actual=body.report_data,
        )


def _body_field(body: Any, attribute: str) -> bytes:
    if attribute.startswith("rtmr"):
        return body.rtmrs[int(attribute[4:])]  # type: ignore[no-any-return]
    return getattr(body, attribute)  # type: ignore[no-any-return]


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UsageError(f"policy.tdx.{key}", "expected a string or a list of strings", actual=value)


def _hex(value: str, key: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as err:
        raise UsageError(f"policy.tdx.{key}", f"not hex: {err}", actual=value) from err
    if len(raw) != size:
        raise UsageError(
            f"policy.tdx.{key}", "wrong length (bytes)", expected=size, actual=len(raw)
        )
    return raw
