"""The party's ``[gpu]`` table, and validating a verified GPU system against it.

::

    [gpu]
    required = true                 # refuse an enclave that attests no GPU
    count = 1                       # exact number of GPUs (omit: any >= 1)
    architectures = ["HOPPER", "BLACKWELL"]
    min_driver_version = "550.90.07"
    min_vbios_version = "96.00.9f.00.01"
    cc_mode = "on"                  # the only accepted value; the enclave states it
    debug = false                   # devtools/debug mode refused
    protected_pcie = false          # true: require PPCIe and its switches
    require_fwid = true             # refuse reports from drivers without the FWID field
    require_ocsp = false            # true: cached OCSP answers must cover the instant
    rims = { required = true }      # match against NVIDIA-signed RIMs (see below)

Fail closed as for measurements: ``rims`` has no default. It is one of

* ``{ required = true }``: every GPU's measurements must match RIMs for its
  driver and VBIOS versions, taken from the host's cache (untrusted: each is
  verified to NVIDIA's RIM root, digest first) and from ``files``;
* ``{ required = true, files = ["driver.xml", "vbios.xml"] }``: also the
  party's own RIM files;
* ``{ required = true, sha384 = ["<96 hex>", ...] }``: and only RIMs with one of
  these reference digests (pinned RIMs) may be used;
* ``{ skip = true }``: measurements are not compared (logged as a warning).

Unknown keys are refused. A ``[gpu]`` table present means GPUs are policed;
with ``required = false`` an enclave with no GPU passes, but any GPU it does
attest must still satisfy every rule.
Every violation is reported, not only the first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestation.errors import PolicyError, UsageError
from attestation.nvidia.rim import MeasurementMatch
from attestation.nvidia.verify import VerifiedSystem
from attestation.policy_values import check_keys

log = logging.getLogger(__name__)

ARCHITECTURES = ("HOPPER", "BLACKWELL")
_KEYS = {
    "required",
    "count",
    "architectures",
    "min_driver_version",
    "min_vbios_version",
    "cc_mode",
    "debug",
    "protected_pcie",
    "require_fwid",
    "require_ocsp",
    "rims",
}


@dataclass(frozen=True)
class GpuPolicy:
    """The typed ``[gpu]`` table."""

    required: bool = True
    count: int | None = None
    architectures: tuple[str, ...] = ARCHITECTURES
    min_driver_version: str | None = None
    min_vbios_version: str | None = None
    protected_pcie: bool = False
    require_fwid: bool = True
    require_ocsp: bool = False
    rims_required: bool = True
    rim_files: tuple[str, ...] = ()
    rim_sha384: tuple[str, ...] = ()  # when set, every RIM used must have one of these digests

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> GpuPolicy:
        """Build from ``[gpu]``; ``UsageError`` names the bad key."""
        if not isinstance(table, Mapping):
            raise UsageError("policy.gpu", "expected a table", actual=type(table).__name__)
        check_keys(table, _KEYS, "policy.gpu")  # names the nearest key of a typo
        if table.get("cc_mode", "on") != "on":
            raise UsageError("policy.gpu.cc_mode", expected='"on"', actual=table.get("cc_mode"))
        if table.get("debug", False) is not False:
            raise UsageError("policy.gpu.debug", "debug GPUs are never accepted", expected=False)
        rims = _rims(table.get("rims"))
        if table.get("require_fwid") is False:
            log.warning("[gpu] require_fwid = false: reports without a FWID are accepted")
        if rims is None:
            log.warning("[gpu] rims = { skip = true }: GPU firmware measurements are NOT checked")
        count = table.get("count")
        if count is not None and (
            not isinstance(count, int) or isinstance(count, bool) or count < 1
        ):
            raise UsageError("policy.gpu.count", expected="an integer >= 1", actual=count)
        archs = table.get("architectures", list(ARCHITECTURES))
        if not isinstance(archs, list) or not archs or any(a not in ARCHITECTURES for a in archs):
            raise UsageError(
                "policy.gpu.architectures", expected=f"a list of {ARCHITECTURES}", actual=archs
            )
        return cls(
            required=_bool(table, "required", True),
            count=count,
            architectures=tuple(archs),
            min_driver_version=_version(table, "min_driver_version"),
            min_vbios_version=_version(table, "min_vbios_version"),
            protected_pcie=_bool(table, "protected_pcie", False),
            require_fwid=_bool(table, "require_fwid", True),
            require_ocsp=_bool(table, "require_ocsp", False),
            rims_required=rims is not None,
            rim_files=tuple(rims["files"]) if rims else (),
            rim_sha384=tuple(rims["sha384"]) if rims else (),
        )

    def missing_identity(self) -> list[str]:
        """None: ``from_dict`` already refuses a table whose ``rims`` is not explicit."""
        return []

    def skipped(self) -> list[str]:
        """``["rims"]`` when firmware measurements are skipped with ``{ skip = true }``."""
        return [] if self.rims_required else ["rims"]


def validate_system(
    system: VerifiedSystem | None,
    policy: GpuPolicy,
    *,
    matches: Sequence[MeasurementMatch | None] = (),
    claimed: Mapping[str, Any] | None = None,
) -> None:
    """Every ``[gpu]`` rule against a verified system; one ``PolicyError`` listing all.

    ``matches``: per GPU, the RIM comparison (None: no RIMs given). ``claimed``:
    what the enclave stated about the GPUs' mode in its claims (``cc_mode``,
    ``devtools``): the CC mode is set by the CVM's owner and read by the
    measured enclave through NVML, not carried in SPDM evidence.
    """
    violations: list[PolicyError] = []

    def fail(check: str, detail: str, expected: Any, actual: Any) -> None:
        violations.append(PolicyError(check, detail, expected=expected, actual=actual))

    gpus = system.gpus if system is not None else ()
    if not gpus:
        if policy.required:
            fail("gpu.required", "the enclave attests no GPU", ">= 1 GPU", 0)
        _raise(violations)
        return
    assert system is not None
    if policy.count is not None and len(gpus) != policy.count:
        fail("gpu.count", "number of attested GPUs", policy.count, len(gpus))
    if policy.protected_pcie and not system.protected_pcie:
        fail("gpu.protected_pcie", "protected PCIe required", "enabled", "disabled")
    mode = dict(claimed or {})
    if mode.get("cc_mode") != "on":
        fail("gpu.cc_mode", "GPU confidential-computing mode", "on", mode.get("cc_mode"))
    if mode.get("devtools", True) is not False:
        fail("gpu.debug", "GPU devtools (debug) mode", False, mode.get("devtools"))
    for position, gpu in enumerate(gpus):
        where = f"gpu[{position}]"
        if gpu.arch not in policy.architectures:
            fail(f"{where}.arch", "architecture", " or ".join(policy.architectures), gpu.arch)
        if policy.require_fwid and gpu.fwid is None:
            fail(f"{where}.fwid", "the report carries no FWID (driver too old)", "FWID", "absent")
        _minimum(fail, f"{where}.driver_version", gpu.driver_version, policy.min_driver_version)
        _minimum(fail, f"{where}.vbios_version", gpu.vbios_version, policy.min_vbios_version)
        if policy.require_ocsp and not gpu.ocsp_checked:
            fail(f"{where}.ocsp", "fresh OCSP answers required", "checked", "not checked")
        match = matches[position] if position < len(matches) else None
        if policy.rims_required:
            if match is None:
                fail(f"{where}.rims", "RIM matching required", "driver and VBIOS RIMs", "none")
            elif not match.ok:
                fail(
                    f"{where}.measurements",
                    "measurements differ from NVIDIA's signed reference values",
                    "all covered, all equal",
                    f"mismatched blocks {list(match.mismatched)}, "
                    f"uncovered blocks {list(match.uncovered)}",
                )
    _raise(violations)


def version_key(text: str) -> tuple[int, ...]:
    """ "550.90.07" -> (550, 90, 7); VBIOS parts are hex ("96.00.9f.00.01")."""
    parts = text.strip().lower().split(".")
    base = 16 if len(parts) == 5 else 10
    return tuple(int(p, base) for p in parts)


def _minimum(fail: Any, check: str, actual: str | None, minimum: str | None) -> None:
    if minimum is None:
        return
    try:
        ok = actual is not None and version_key(actual) >= version_key(minimum)
    except ValueError:
        ok = False
    if not ok:
        fail(check, "below the policy's minimum", f">= {minimum}", actual)


def _raise(violations: list[PolicyError]) -> None:
    if violations:
        first = violations[0]
        raise PolicyError(
            first.check,
            first.detail,
            expected=first.expected,
            actual=first.actual,
            violations=violations,
        )


def _rims(value: Any) -> dict[str, list[str]] | None:
    """The ``rims`` value: None for an explicit skip, else files and pins (may be empty)."""
    expected = "rims = { required = true [, files = [...]] [, sha384 = [...]] } or { skip = true }"
    if isinstance(value, Mapping) and dict(value) == {"skip": True}:
        return None
    if not isinstance(value, Mapping) or value.get("required") is not True:
        raise UsageError(
            "policy.gpu.rims",
            "say explicitly whether measurements are matched against NVIDIA's RIMs",
            expected=expected,
            actual=repr(value),
        )
    unknown = sorted(set(value) - {"required", "files", "sha384"})
    if unknown:
        raise UsageError(f"policy.gpu.rims.{unknown[0]}", "unknown key", expected=expected)
    out: dict[str, list[str]] = {}
    for key in ("files", "sha384"):
        items = value.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise UsageError(f"policy.gpu.rims.{key}", expected="a list of strings", actual=items)
        out[key] = list(items)
    for digest in out["sha384"]:
        if len(digest) != 96 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise UsageError("policy.gpu.rims.sha384", expected="96 hex digits", actual=digest)
    out["sha384"] = [d.lower() for d in out["sha384"]]
    return out


def _bool(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise UsageError(f"policy.gpu.{key}", expected="true or false", actual=value)
    return value


def _version(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    try:
        version_key(str(value))
    except ValueError as err:
        raise UsageError(f"policy.gpu.{key}", "not a dotted version", actual=value) from err
    return str(value)
