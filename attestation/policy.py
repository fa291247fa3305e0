"""Does verified evidence meet the party's reference values? Policy, as data.

A policy is a TOML file (see docs/attestation.md):

    allow_simulated = false
    [snp]
    minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
    allowed_measurements = ["<96 hex>"]
    [snp.minimum_tcb_by_product.Genoa]
    snp = 23

In ``SnpPolicy`` a value of None (or an absent key) means "not checked"; the two
checks that protect confidentiality by default, debug and migration agent, are
ON unless the policy explicitly allows them. Unknown keys inside ``[snp]`` are
refused, so a typo can never silently weaken a policy. ``validate_report``
reports every violation at once, each as one line naming the check with the
expected and actual values.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from attestation.errors import PolicyError, TcmeError, UsageError
from attestation.snp.abi import (
    GUEST_POLICY_FLAGS,
    PLATFORM_INFO_FLAGS,
    PRODUCTS,
    AttestationReport,
    TcbVersion,
)
from attestation.snp.verify import SIMULATED_PRODUCT
from attestation.text import parse_sha256

log = logging.getLogger(__name__)

TCB_COMPONENTS = ("fmc", "bootloader", "tee", "snp", "microcode")
SIGNING_KEYS = ("VCEK", "VLEK")
# Guest-policy flags with their own, safe-by-default switches.
_DEDICATED_FLAGS = {"debug": "allow_debug", "migrate_ma": "allow_migration_agent"}


@dataclass(frozen=True)
class SnpPolicy:
    """Reference values for SEV-SNP reports. None / empty = not checked.

    Byte fields hold the exact length of their report field: measurements and
    id/author key digests 48, host_data 32, family_id/image_id 16, report_data
    and chip ids 64.
    """

    minimum_report_version: int | None = None
    minimum_tcb: Mapping[str, int] | None = None  # applies to REPORTED_TCB
    minimum_tcb_by_product: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    minimum_launch_tcb: Mapping[str, int] | None = None
    allow_debug: bool = False
    allow_migration_agent: bool = False
    guest_policy: Mapping[str, bool] = field(default_factory=dict)  # flag -> required value
    minimum_abi: tuple[int, int] | None = None  # guest policy ABI (major, minor)
    platform_info: Mapping[str, bool] = field(default_factory=dict)  # flag -> required value
    allowed_measurements: tuple[bytes, ...] | None = None
    host_data: bytes | None = None
    id_key_digests: tuple[bytes, ...] | None = None
    author_key_digests: tuple[bytes, ...] | None = None
    family_id: bytes | None = None
    image_id: bytes | None = None
    vmpl: int | None = None
    minimum_guest_svn: int | None = None
    report_data: bytes | None = None
    allowed_products: tuple[str, ...] | None = None
    signing_keys: tuple[str, ...] | None = None
    allowed_chip_ids: tuple[bytes, ...] | None = None
    minimum_firmware: tuple[int, int] | None = None  # CURRENT_MAJOR.CURRENT_MINOR
    minimum_build: int | None = None  # CURRENT_BUILD

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnpPolicy:
        """Build from the ``[snp]`` table; refuses unknown keys and malformed values."""
        _expect_table(data, "snp")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"policy.snp.{unknown[0]}",
                "unknown key in [snp] (a typo must not silently weaken the policy)",
                expected="one of " + ", ".join(sorted(known)),
                actual=", ".join(unknown),
            )
        kw: dict[str, Any] = {}
        for key, value in data.items():
            kw[key] = _CONVERTERS[key](value, f"policy.snp.{key}")
        return cls(**kw)

    def minimum_tcb_for(self, product: str | None) -> dict[str, int]:
        """The general minimum TCB, overridden per component by the product's entry."""
        merged = dict(self.minimum_tcb or {})
        if product is not None and self.minimum_tcb_by_product:
            merged.update(self.minimum_tcb_by_product.get(product, {}))
        return merged


@dataclass(frozen=True)
class Policy:
    """A party's whole verification policy.

    ``allow_simulated`` must be set explicitly to accept simulated evidence; then
    ``simulated_ark_sha256`` (if non-empty) pins which simulated roots. ``tdx``
    is the raw ``[tdx]`` table (typed by ``attestation.tdx``); other top-level
    tables (``[model]``, ``[contract]``, ...) belong to other layers and are kept
    untouched in ``extra``.
    """

    allow_simulated: bool = False
    simulated_ark_sha256: tuple[str, ...] = ()
    snp: SnpPolicy = field(default_factory=SnpPolicy)
    tdx: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Build from a parsed TOML document. Raises ``UsageError`` on malformed policy."""
        _expect_table(data, "policy")
        extra: dict[str, Any] = {}
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key == "allow_simulated":
                kw[key] = _to_bool(value, "policy.allow_simulated")
            elif key == "simulated_ark_sha256":
                values = [value] if isinstance(value, str) else value
                kw[key] = tuple(
                    parse_sha256(v, f"policy.{key}").hex()
                    for v in _to_list(values, f"policy.{key}")
                )
            elif key == "snp":
                kw[key] = SnpPolicy.from_dict(value)
            elif key == "tdx":
                _expect_table(value, "tdx")
                kw[key] = dict(value)
            elif isinstance(value, Mapping):
                extra[key] = value
            else:
                raise UsageError(
                    f"policy.{key}",
                    "unknown top-level key",
                    expected="allow_simulated, simulated_ark_sha256 or a [table]",
                    actual=key,
                )
        policy = cls(extra=extra, **kw)
        if policy.allow_simulated:
            log.warning("policy allows SIMULATED evidence (allow_simulated = true)")
        return policy

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read a TOML policy file. Raises ``UsageError`` when missing or malformed."""
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except OSError as err:
            raise UsageError("policy.file", f"cannot read {path}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise UsageError("policy.file", f"{path} is not UTF-8 text") from err
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise UsageError("policy.toml", f"{path}: {err}") from err
        return cls.from_dict(data)


def validate_report(
    report: AttestationReport,
    policy: SnpPolicy,
    *,
    expected_report_data: bytes | None = None,
    report_data_check: Callable[[bytes], None] | None = None,
    product: str | None = None,
) -> None:
    """Check a (signature-verified) report against ``policy``; report every violation.

    ``product``: the product line the verified chain is for (default: the one the
    report's CPUID names). ``expected_report_data``: exact REPORT_DATA, in
    addition to the policy's. ``report_data_check``: called with REPORT_DATA,
    raises (preferably a ``TcmeError``) to reject. Raises ``PolicyError`` whose
    ``violations`` list every failed check.
    """
    v = _Violations()
    product = product or report.cpuid_product
    _check_tcb(v, "reported_tcb", report.reported_tcb, policy.minimum_tcb_for(product))
    _check_tcb(v, "launch_tcb", report.launch_tcb, policy.minimum_launch_tcb or {})

    guest = report.guest_policy
    if guest.debug and not policy.allow_debug:
        v.add(
            "policy.debug",
            "guest policy allows debugging (the host can read guest memory)",
            expected="debug disabled (allow_debug = false)",
            actual="debug allowed",
        )
    if guest.migrate_ma and not policy.allow_migration_agent:
        v.add(
            "policy.migrate_ma",
            "guest policy allows a migration agent",
            expected="no migration agent (allow_migration_agent = false)",
            actual="migration agent allowed",
        )
    for flag, required in policy.guest_policy.items():
        actual = getattr(guest, flag)
        if actual != required:
            v.add(f"policy.{flag}", "guest policy flag differs", expected=required, actual=actual)
    if policy.minimum_abi is not None and (guest.abi_major, guest.abi_minor) < policy.minimum_abi:
        v.add(
            "policy.abi",
            "guest policy ABI below minimum",
            expected=f">= {_ver(policy.minimum_abi)}",
            actual=_ver((guest.abi_major, guest.abi_minor)),
        )
    platform = report.platform
    for flag, required in policy.platform_info.items():
        actual = getattr(platform, flag)
        if actual != required:
            v.add(
                f"platform_info.{flag}", "platform flag differs", expected=required, actual=actual
            )

    if policy.minimum_report_version is not None and report.version < policy.minimum_report_version:
        v.add(
            "report_version",
            f"{report.version} < required {policy.minimum_report_version}",
            expected=f">= {policy.minimum_report_version}",
            actual=report.version,
        )
    if policy.vmpl is not None and report.vmpl != policy.vmpl:
        v.add("vmpl", "report requested at another VMPL", expected=policy.vmpl, actual=report.vmpl)
    if policy.minimum_guest_svn is not None and report.guest_svn < policy.minimum_guest_svn:
        v.add(
            "guest_svn",
            f"{report.guest_svn} < required {policy.minimum_guest_svn}",
            expected=f">= {policy.minimum_guest_svn}",
            actual=report.guest_svn,
        )
    firmware = (report.current_major, report.current_minor)
    if policy.minimum_firmware is not None and firmware < policy.minimum_firmware:
        v.add(
            "firmware_version",
            "SNP firmware older than required",
            expected=f">= {_ver(policy.minimum_firmware)}",
            actual=_ver(firmware),
        )
    if policy.minimum_build is not None and report.current_build < policy.minimum_build:
        v.add(
            "firmware_build",
            f"{report.current_build} < required {policy.minimum_build}",
            expected=f">= {policy.minimum_build}",
            actual=report.current_build,
        )

    _check_one_of(v, "measurement", report.measurement, policy.allowed_measurements)
    _check_equal(v, "host_data", report.host_data, policy.host_data)
    _check_one_of(v, "id_key_digest", report.id_key_digest, policy.id_key_digests)
    _check_one_of(v, "author_key_digest", report.author_key_digest, policy.author_key_digests)
    _check_equal(v, "family_id", report.family_id, policy.family_id)
    _check_equal(v, "image_id", report.image_id, policy.image_id)
    _check_one_of(v, "chip_id", report.chip_id, policy.allowed_chip_ids)
    if policy.allowed_products is not None and product not in policy.allowed_products:
        v.add(
            "product",
            "product line not allowed",
            expected="one of " + ", ".join(policy.allowed_products),
            actual=product,
        )
    if policy.signing_keys is not None and report.signing_key not in policy.signing_keys:
        v.add(
            "signing_key",
            "signing key kind not allowed",
            expected="one of " + ", ".join(policy.signing_keys),
            actual=report.signing_key,
        )

    _check_equal(v, "report_data", report.report_data, policy.report_data)
    _check_equal(v, "report_data", report.report_data, expected_report_data)
    if report_data_check is not None:
        try:
            report_data_check(report.report_data)
        except TcmeError as err:
            v.add(err.check, err.detail, expected=err.expected, actual=err.actual)
        except Exception as err:  # a failing caller check is a rejection
            v.add("report_data.check", f"{type(err).__name__}: {err}")
    v.raise_if_any()


class _Violations:
    def __init__(self) -> None:
        self.items: list[PolicyError] = []

    def add(
        self, check: str, detail: str = "", *, expected: Any = None, actual: Any = None
    ) -> None:
        self.items.append(PolicyError(check, detail, expected=expected, actual=actual))

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyError(
                "policy",
                f"{len(self.items)} policy violation(s)",
                violations=self.items,
            )


def _check_tcb(v: _Violations, name: str, tcb: TcbVersion, minimum: Mapping[str, int]) -> None:
    actual = tcb.components()
    for component, required in minimum.items():
        if component not in actual:  # fmc exists only on Turin's layout
            continue
        if actual[component] < required:
            v.add(
                f"{name}.{component}",
                f"{actual[component]} < required {required}",
                expected=f">= {required}",
                actual=actual[component],
            )


def _check_equal(v: _Violations, check: str, actual: bytes, expected: bytes | None) -> None:
    if expected is not None and actual != expected:
        v.add(check, "value differs", expected=expected.hex(), actual=actual.hex())


def _check_one_of(
    v: _Violations, check: str, actual: bytes, allowed: Sequence[bytes] | None
) -> None:
    if allowed is not None and actual not in allowed:
        shown = ", ".join(a.hex() for a in allowed) if allowed else "(empty allow-list)"
        v.add(
            check, "value not in the allowed list", expected=f"one of {shown}", actual=actual.hex()
        )


def _ver(value: tuple[int, int]) -> str:
    return f"{value[0]}.{value[1]}"


# -- converters from TOML values ---------------------------------------------------------


def _expect_table(value: Any, name: str) -> None:
    if not isinstance(value, Mapping):
        raise UsageError(f"policy.{name}", "must be a table", actual=type(value).__name__)


def _to_bool(value: Any, check: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(check, "must be true or false", actual=repr(value))
    return value


def _to_int(value: Any, check: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(check, "must be an integer", expected=f"{lo}..{hi}", actual=repr(value))
    return value


def _to_list(value: Any, check: str) -> list[Any]:
    if not isinstance(value, list):
        raise UsageError(check, "must be a list", actual=type(value).__name__)
    return value


def _to_bytes(value: Any, check: str, size: int) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", value.strip()):
        raise UsageError(
            check, "must be a hex string", expected=f"{2 * size} hex digits", actual=repr(value)
        )
    raw = bytes.fromhex(value.strip())
    if len(raw) != size:
        raise UsageError(
            check, "wrong length", expected=f"{size} bytes", actual=f"{len(raw)} bytes"
        )
    return raw


def _bytes_conv(size: int) -> Callable[[Any, str], bytes]:
    return lambda value, check: _to_bytes(value, check, size)


def _bytes_list_conv(size: int) -> Callable[[Any, str], tuple[bytes, ...]]:
    return lambda value, check: tuple(
        _to_bytes(item, f"{check}[{i}]", size) for i, item in enumerate(_to_list(value, check))
    )


def _tcb_conv(value: Any, check: str) -> dict[str, int]:
    _expect_table(value, check.removeprefix("policy."))
    out: dict[str, int] = {}
    for key, svn in value.items():
        if key not in TCB_COMPONENTS:
            raise UsageError(
                f"{check}.{key}",
                "unknown TCB component",
                expected="one of " + ", ".join(TCB_COMPONENTS),
                actual=key,
            )
        out[key] = _to_int(svn, f"{check}.{key}", 0, 255)
    return out


def _tcb_by_product_conv(value: Any, check: str) -> dict[str, dict[str, int]]:
    _expect_table(value, check.removeprefix("policy."))
    out: dict[str, dict[str, int]] = {}
    for product, table in value.items():
        if product not in (*PRODUCTS, SIMULATED_PRODUCT):
            raise UsageError(
                f"{check}.{product}",
                "unknown product",
                expected="one of " + ", ".join(PRODUCTS),
                actual=product,
            )
        out[product] = _tcb_conv(table, f"{check}.{product}")
    return out


def _flags_conv(
    known: Mapping[str, int], forbidden: Mapping[str, str]
) -> Callable[[Any, str], dict[str, bool]]:
    def convert(value: Any, check: str) -> dict[str, bool]:
        _expect_table(value, check.removeprefix("policy."))
        out: dict[str, bool] = {}
        for key, flag in value.items():
            if key in forbidden:
                raise UsageError(
                    f"{check}.{key}",
                    f"use {forbidden[key]} in [snp] for this flag",
                    expected=forbidden[key],
                    actual=key,
                )
            if key not in known:
                raise UsageError(
                    f"{check}.{key}",
                    "unknown flag",
                    expected="one of " + ", ".join(k for k in known if k not in forbidden),
                    actual=key,
                )
            out[key] = _to_bool(flag, f"{check}.{key}")
        return out

    return convert


def _version_conv(value: Any, check: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", value) if isinstance(value, str) else None
    if not match or int(match[1]) > 255 or int(match[2]) > 255:
        raise UsageError(check, 'must be "MAJOR.MINOR"', expected='e.g. "1.55"', actual=repr(value))
    return int(match[1]), int(match[2])


def _choices_conv(choices: Sequence[str]) -> Callable[[Any, str], tuple[str, ...]]:
    def convert(value: Any, check: str) -> tuple[str, ...]:
        items = _to_list(value, check)
        for item in items:
            if item not in choices:
                raise UsageError(
                    check,
                    "unknown value",
                    expected="one of " + ", ".join(choices),
                    actual=repr(item),
                )
        return tuple(items)

    return convert


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "minimum_report_version": lambda v, c: _to_int(v, c, 2, 255),
    "minimum_tcb": _tcb_conv,
    "minimum_tcb_by_product": _tcb_by_product_conv,
    "minimum_launch_tcb": _tcb_conv,
    "allow_debug": _to_bool,
    "allow_migration_agent": _to_bool,
    "guest_policy": _flags_conv(GUEST_POLICY_FLAGS, _DEDICATED_FLAGS),
    "minimum_abi": _version_conv,
    "platform_info": _flags_conv(PLATFORM_INFO_FLAGS, {}),
    "allowed_measurements": _bytes_list_conv(48),
    "host_data": _bytes_conv(32),
    "id_key_digests": _bytes_list_conv(48),
    "author_key_digests": _bytes_list_conv(48),
    "family_id": _bytes_conv(16),
    "image_id": _bytes_conv(16),
    "vmpl": lambda v, c: _to_int(v, c, 0, 3),
    "minimum_guest_svn": lambda v, c: _to_int(v, c, 0, 2**32 - 1),
    "report_data": _bytes_conv(64),
    "allowed_products": _choices_conv((*PRODUCTS, SIMULATED_PRODUCT)),
    "signing_keys": _choices_conv(SIGNING_KEYS),
    "allowed_chip_ids": _bytes_list_conv(64),
    "minimum_firmware": _version_conv,
    "minimum_build": lambda v, c: _to_int(v, c, 0, 255),
}
