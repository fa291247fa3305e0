"""The party policy, as data: one strict parser for the whole file, and the SEV-SNP checks.

A policy is one TOML file (docs/security.md "Policy reference")::

    accept = ["sev-snp"]                 # the evidence kinds this party accepts (required)
    allow_simulated = false              # true also needs simulated_ark_sha256 = ["<64 hex>"]

    [snp]                                # required when accept names sev-snp
    allowed_measurements = ["<96 hex>"]  # required: pinned, or { skip = true }
    minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
    require_crl = true                   # read AMD's CRL from the party's own KDS cache
    kds_cache = "kds"                    # that cache (relative to the policy file)

    [tdx]                                # required when accept names tdx
    mrtd = ["<96 hex>"]                  # mrtd, rtmr0, rtmr1, rtmr2 required, or { skip = true }

    [model] / [contract]                 # the party layer's tables (tcme.client.policy)

Fail-closed rules, all enforced when the policy is built (never at verify time):

* every unknown table or key, at any level, is an error naming it and the nearest
  known name (``[SNP]`` -> ``snp``);
* ``accept`` is required; evidence of a kind it does not name is refused
  (``attestation.verifier``, check ``tee.accept``); a table for a kind that is
  not accepted is an error;
* each accepted kind's launch identity is pinned to a non-empty list, or skipped
  with the explicit value ``{ skip = true }`` (logged, and listed by ``skipped()``
  in every summary); an empty list is an error, not a wildcard;
* ``allow_simulated = true`` needs a pinned ``simulated_ark_sha256``.

Registration point for a new policy table (e.g. ``[azure]``, ``[gpu]``): add one
``PolicyTable`` row to ``POLICY_TABLES`` and the kinds that need it to
``REQUIRED_TABLES``. Its ``parse(table, base)`` returns a frozen object (refusing
unknown keys with ``attestation.policy_values.check_keys``) that has
``missing_identity() -> list[str]`` (launch-identity keys neither pinned nor
skipped, each as ``"key: how to pin or skip it"``) and ``skipped() -> list[str]``
(keys set to ``{ skip = true }``). The parsed table is ``Policy.table(name)``.
The party layer's own tables (``[model]``, ``[contract]``) come in through
``parse_policy_document(..., app_tables=...)``, so one loop sees every top-level
name and refuses unknown ones.

In ``SnpPolicy`` a value of None (an absent key) means "not checked", except the
launch identity above; the two checks that protect confidentiality by default,
debug and migration agent, are ON unless the policy explicitly allows them.
``validate_report`` reports every violation at once, each as one line naming the
check with the expected and actual values.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from attestation.azure.policy import AzurePolicy
from attestation.errors import PolicyError, UsageError
from attestation.nvidia.policy import GpuPolicy
from attestation.policy_values import SKIP as SKIP  # re-exported: the skip value
from attestation.policy_values import (
    Skip,
    check_keys,
    expect_table,
    hex_converter,
    pinned,
    to_bool,
    to_int,
    to_list,
    unknown_name,
)
from attestation.snp.abi import (
    GUEST_POLICY_FLAGS,
    PLATFORM_INFO_FLAGS,
    PRODUCTS,
    AttestationReport,
    TcbVersion,
)
from attestation.snp.verify import SIMULATED_PRODUCT
from attestation.tdx.policy import TdxPolicy
from attestation.tee import Tee
from attestation.text import parse_sha256

log = logging.getLogger(__name__)

TCB_COMPONENTS = ("fmc", "bootloader", "tee", "snp", "microcode")
SIGNING_KEYS = ("VCEK", "VLEK")
# Guest-policy flags with their own, safe-by-default switches.
_DEDICATED_FLAGS = {"debug": "allow_debug", "migrate_ma": "allow_migration_agent"}
SNP_MEASURE_HINT = (
    'allowed_measurements = ["<96 hex>"] (compute it with `tcme measure snp`, or copy it '
    "from `tcme evidence verify` of a reference launch), or skip the check explicitly with "
    "allowed_measurements = { skip = true }"
)


@dataclass(frozen=True)
class SnpPolicy:
    """Reference values for SEV-SNP reports. None = not checked (``SKIP``: skipped explicitly).

    Byte fields hold the exact length of their report field: measurements and
    id/author key digests 48, host_data 32, family_id/image_id 16, report_data
    and chip ids 64. ``allowed_measurements`` is the launch identity: a policy
    that accepts ``sev-snp`` must pin it or set it to ``SKIP`` (``Policy`` checks).
    ``require_crl``: revocation is checked with AMD's CRL read from ``kds_cache``
    (the party's own ``attestation.kds`` cache), never with one the proxy sent.
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
    allowed_measurements: tuple[bytes, ...] | Skip | None = None
    host_data: bytes | None = None
    id_key_digests: tuple[bytes, ...] | Skip | None = None
    author_key_digests: tuple[bytes, ...] | Skip | None = None
    family_id: bytes | None = None
    image_id: bytes | None = None
    vmpl: int | None = None
    minimum_guest_svn: int | None = None
    report_data: bytes | None = None
    allowed_products: tuple[str, ...] | None = None
    signing_keys: tuple[str, ...] | None = None
    allowed_chip_ids: tuple[bytes, ...] | Skip | None = None
    minimum_firmware: tuple[int, int] | None = None  # CURRENT_MAJOR.CURRENT_MINOR
    minimum_build: int | None = None  # CURRENT_BUILD
    require_crl: bool = False
    kds_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.require_crl and self.kds_cache is None:
            raise UsageError(
                "policy.snp.kds_cache",
                "require_crl = true needs the party's own KDS cache to read AMD's CRL from "
                '(kds_cache = "DIR", relative to the policy file)',
                expected="kds_cache = DIR",
                actual="none",
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path | None = None) -> SnpPolicy:
        """Build from the ``[snp]`` table; refuses unknown keys and malformed values.

        ``base``: the folder relative paths (``kds_cache``) resolve against.
        """
        expect_table(data, "policy.snp")
        check_keys(data, [f.name for f in fields(cls)], "policy.snp")
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key == "kds_cache":
                kw[key] = _path(value, "policy.snp.kds_cache", base)
            else:
                kw[key] = _CONVERTERS[key](value, f"policy.snp.{key}")
        return cls(**kw)

    def minimum_tcb_for(self, product: str | None) -> dict[str, int]:
        """The general minimum TCB, overridden per component by the product's entry."""
        merged = dict(self.minimum_tcb or {})
        if product is not None and self.minimum_tcb_by_product:
            merged.update(self.minimum_tcb_by_product.get(product, {}))
        return merged

    def missing_identity(self) -> list[str]:
        """The launch identity keys neither pinned nor skipped, each with how to set it."""
        if self.allowed_measurements is None:
            return [f"allowed_measurements: pin it with {SNP_MEASURE_HINT}"]
        return []

    def skipped(self) -> list[str]:
        """Keys this table sets to ``{ skip = true }``."""
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), Skip)]


@dataclass(frozen=True)
class PolicyTable:
    """One registered top-level evidence table: its name, parser and evidence kinds."""

    name: str
    parse: Callable[[Mapping[str, Any], Path | None], Any]
    kinds: tuple[Tee, ...]


# Registration point for evidence-policy tables (see the module docstring).
POLICY_TABLES: dict[str, PolicyTable] = {
    "snp": PolicyTable("snp", SnpPolicy.from_dict, (Tee.SEV_SNP,)),
    "tdx": PolicyTable("tdx", lambda table, _base: TdxPolicy.from_dict(table), (Tee.TDX,)),
    "azure": PolicyTable("azure", AzurePolicy.from_dict, (Tee.AZ_SNP_VTPM, Tee.AZ_TDX_VTPM)),
    "gpu": PolicyTable("gpu", lambda table, _base: GpuPolicy.from_dict(table), (Tee.NVIDIA_GPU,)),
}
# The tables each accepted kind needs (a kind missing here cannot be accepted yet).
REQUIRED_TABLES: dict[Tee, tuple[str, ...]] = {
    Tee.SEV_SNP: ("snp",),
    Tee.TDX: ("tdx",),
    Tee.AZ_SNP_VTPM: ("azure",),
    Tee.AZ_TDX_VTPM: ("azure",),
    Tee.NVIDIA_GPU: ("gpu",),
}
EVIDENCE_KEYS = ("accept", "allow_simulated", "simulated_ark_sha256")


@dataclass(frozen=True)
class Policy:
    """The evidence part of a party's policy, valid by construction.

    ``accept``: the evidence kinds the party accepts (evidence of any other kind is
    refused). ``tables``: the parsed evidence tables by name (``snp``, ``tdx``, ...),
    each required for the kinds ``REQUIRED_TABLES`` says. ``allow_simulated`` needs a
    non-empty ``simulated_ark_sha256`` (the pinned simulated roots). Construction
    raises ``UsageError`` on any rule of the module docstring, so no code path can
    build a policy that silently accepts more than it names.

    ``authenticity_only`` marks ``Policy.unsafe_authenticity_only()``: signatures and
    chains are checked, reference values are not (``tcme evidence verify`` without a
    policy); a party never uses it.
    """

    accept: tuple[Tee, ...]
    tables: Mapping[str, Any] = field(default_factory=dict)
    allow_simulated: bool = False
    simulated_ark_sha256: tuple[str, ...] = ()
    authenticity_only: bool = False

    def __post_init__(self) -> None:
        _check_accept(self.accept)
        for name in self.tables:
            spec = POLICY_TABLES.get(name)
            if spec is None:
                raise unknown_name("policy", name, POLICY_TABLES, what="table")
            if not set(spec.kinds) & set(self.accept):
                kinds = " or ".join(repr(k.value) for k in spec.kinds)
                raise UsageError(
                    f"policy.{name}",
                    f"[{name}] configures {kinds}, which accept does not name: add it to "
                    f"accept, or remove the [{name}] table",
                    expected=f"accept including {kinds}",
                    actual="accept = [" + ", ".join(f'"{k.value}"' for k in self.accept) + "]",
                )
        for tee in self.accept:
            for name in REQUIRED_TABLES.get(tee, ()):
                table = self.tables.get(name)
                if table is None and self.authenticity_only:
                    continue
                if table is None:
                    raise UsageError(
                        f"policy.{name}",
                        f"accept names {tee.value!r}, so the policy needs a [{name}] table "
                        "pinning its launch identity",
                        expected=f"[{name}] with " + _identity_hint(name),
                        actual=f"no [{name}] table",
                    )
                missing = [] if self.authenticity_only else table.missing_identity()
                if missing:
                    key, _, how = missing[0].partition(": ")
                    raise UsageError(
                        f"policy.{name}.{key}",
                        f"the launch identity of {tee.value} is not pinned (nothing absent "
                        f"means 'anything'): {how}",
                        expected="a non-empty list, or { skip = true }",
                        actual="absent",
                    )
        if self.allow_simulated:
            if not self.simulated_ark_sha256:
                raise UsageError(
                    "policy.simulated_ark_sha256",
                    "allow_simulated = true needs the simulated root pinned, or anyone could "
                    "impersonate the enclave with a chain of their own; the enclave operator "
                    "publishes it (`tcme enclave serve --simulated` logs it, `tcme sim snp` "
                    "writes it)",
                    expected='simulated_ark_sha256 = ["<64 hex>"]',
                    actual="none",
                )
        elif self.simulated_ark_sha256:
            raise UsageError(
                "policy.simulated_ark_sha256",
                "a simulated root is pinned but allow_simulated is not true: say which you mean",
                expected="allow_simulated = true, or no simulated_ark_sha256",
                actual="allow_simulated = false",
            )

    @classmethod
    def unsafe_authenticity_only(cls, **tables: Any) -> Policy:
        """Accept every kind, checking only authenticity (signatures, chains, and the safe
        defaults of each table: no debug, no migration agent, an up-to-date TDX TCB; Azure
        PCRs and GPU RIMs unchecked). No launch identity is checked: never use it to
        release a secret."""
        return cls(accept=tuple(REQUIRED_TABLES), tables=tables, authenticity_only=True)

    @property
    def snp(self) -> SnpPolicy:
        """The ``[snp]`` table (its defaults when the policy does not accept SEV-SNP)."""
        table = self.tables.get("snp")
        return table if isinstance(table, SnpPolicy) else SnpPolicy()

    @property
    def tdx(self) -> TdxPolicy:
        """The ``[tdx]`` table (its defaults when the policy does not accept TDX)."""
        table = self.tables.get("tdx")
        return table if isinstance(table, TdxPolicy) else TdxPolicy()

    def table(self, name: str) -> Any:
        """A registered table by name (None when the policy has none)."""
        return self.tables.get(name)

    def skipped(self, tee: Tee | None = None) -> list[str]:
        """``table.key`` of every reference value skipped with ``{ skip = true }``
        (only the tables of ``tee`` when given); ``authenticity_only`` shows as ``*``."""
        if self.authenticity_only:
            return ["* (no policy: no reference value checked)"]
        names = REQUIRED_TABLES.get(tee, ()) if tee is not None else tuple(self.tables)
        out: list[str] = []
        for name in names:
            table = self.tables.get(name)
            if table is not None:
                out += [f"{name}.{key}" for key in table.skipped()]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> Policy:
        """Build from a parsed TOML document with only evidence keys and tables."""
        return parse_policy_document(data, base=base)[0]

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read a TOML policy file with only evidence keys and tables."""
        return cls.from_dict(read_policy_toml(path), base=Path(path).parent)


def parse_policy_document(
    data: Mapping[str, Any],
    *,
    base: Path | None = None,
    app_tables: Mapping[str, Callable[[Any, Path | None], Any]] | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """The one parser of a party policy file: every top-level name goes through here.

    ``app_tables``: the tables of the layer above (``[model]``, ``[contract]``), each
    parsed by its function; their results come back in the second value. Raises
    ``UsageError`` naming the first unknown or malformed table or key.
    """
    expect_table(data, "policy")
    app_tables = dict(app_tables or {})
    known = {*EVIDENCE_KEYS, *POLICY_TABLES, *app_tables}
    kw: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    apps: dict[str, Any] = {}
    for key in sorted(data):
        value = data[key]
        if key not in known:
            what = "table" if isinstance(value, Mapping) else "key"
            raise unknown_name("policy", key, known, what=what)
        if key == "accept":
            items = value if isinstance(value, list) else to_list(value, "policy.accept")
            kw["accept"] = tuple(Tee.parse(v, f"policy.accept[{i}]") for i, v in enumerate(items))
        elif key == "allow_simulated":
            kw[key] = to_bool(value, "policy.allow_simulated")
        elif key == "simulated_ark_sha256":
            kw[key] = tuple(
                parse_sha256(v, f"policy.{key}[{i}]").hex()  # sha256:<hex> or bare hex
                for i, v in enumerate(to_list(value, f"policy.{key}"))
            )
        elif key in POLICY_TABLES:
            tables[key] = POLICY_TABLES[key].parse(expect_table(value, f"policy.{key}"), base)
        else:
            apps[key] = app_tables[key](value, base)
    if "accept" not in kw:
        raise UsageError(
            "policy.accept",
            "the policy must name the evidence kinds it accepts and pin each one's launch "
            'identity, e.g. accept = ["sev-snp"] with [snp] ' + SNP_MEASURE_HINT,
            expected="accept = [" + ", ".join(f'"{t.value}"' for t in REQUIRED_TABLES) + "]",
            actual="absent",
        )
    policy = Policy(tables=tables, **kw)
    if policy.allow_simulated:
        log.warning("policy allows SIMULATED evidence (allow_simulated = true)")
    for name in policy.skipped():
        log.warning("policy skips the %s check ({ skip = true })", name)
    return policy, apps


def read_policy_toml(path: Path) -> dict[str, Any]:
    """A policy file's TOML document. Raises ``UsageError`` when missing or malformed."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise UsageError("policy.file", f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise UsageError("policy.file", f"{path} is not UTF-8 text") from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError("policy.toml", f"{path}: {err}") from err


def simulated_policy(ark_sha256: str, measurement: bytes) -> dict[str, Any]:
    """The evidence part of a policy that accepts one simulated enclave, and only it."""
    return {
        "accept": [Tee.SEV_SNP.value],
        "allow_simulated": True,
        "simulated_ark_sha256": [ark_sha256],
        "snp": {"allowed_measurements": [measurement.hex()]},
    }


def _check_accept(accept: Iterable[Tee]) -> None:
    accept = tuple(accept)
    if not accept:
        raise UsageError(
            "policy.accept",
            "an empty accept list accepts nothing: name the evidence kinds this party accepts",
            expected='e.g. accept = ["sev-snp"]',
            actual="[]",
        )
    seen: set[Tee] = set()
    for tee in accept:
        if not isinstance(tee, Tee):
            raise UsageError("policy.accept", "not an evidence kind", actual=repr(tee))
        if tee in seen:
            raise UsageError("policy.accept", "named twice", actual=tee.value)
        seen.add(tee)
        if tee not in REQUIRED_TABLES:
            raise UsageError(
                "policy.accept",
                f"{tee.value} evidence is not supported by this verifier yet",
                expected="one of " + ", ".join(t.value for t in REQUIRED_TABLES),
                actual=tee.value,
            )
    if all(t.is_device for t in accept):
        raise UsageError(
            "policy.accept",
            "device evidence only accompanies a CPU-TEE evidence: name a CPU TEE too",
            actual=[t.value for t in accept],
        )


def _identity_hint(name: str) -> str:
    if name == "snp":
        return SNP_MEASURE_HINT
    if name == "tdx":
        return "mrtd, rtmr0, rtmr1, rtmr2 pinned (`tcme measure tdx --from-quote`), or skipped"
    return "its launch identity pinned, or skipped with { skip = true }"


def _path(value: Any, check: str, base: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise UsageError(check, "must be a folder path", actual=repr(value))
    path = Path(value).expanduser()
    return path if path.is_absolute() or base is None else base / path


def validate_report(
    report: AttestationReport,
    policy: SnpPolicy,
    *,
    product: str | None = None,
) -> None:
    """Check a (signature-verified) report against ``policy``; report every violation.

    ``product``: the product line the verified chain is for (default: the one the
    report's CPUID names). The REPORT_DATA binding is not checked here: the
    verifier checks it, in one place, for every kind (``attestation.binding``).
    Raises ``PolicyError`` whose ``violations`` list every failed check.
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
    v: _Violations, check: str, actual: bytes, allowed: Sequence[bytes] | Skip | None
) -> None:
    if allowed is None or isinstance(allowed, Skip):
        return
    if actual not in allowed:
        shown = ", ".join(a.hex() for a in allowed) if allowed else "(empty allow-list)"
        v.add(
            check, "value not in the allowed list", expected=f"one of {shown}", actual=actual.hex()
        )


def _ver(value: tuple[int, int]) -> str:
    return f"{value[0]}.{value[1]}"


# -- converters from TOML values ---------------------------------------------------------


def _bytes_conv(size: int) -> Callable[[Any, str], bytes]:
    return hex_converter(size)


def _pinned_conv(size: int) -> Callable[[Any, str], tuple[bytes, ...] | Skip]:
    return lambda value, check: pinned(value, check, hex_converter(size))


def _tcb_conv(value: Any, check: str) -> dict[str, int]:
    expect_table(value, check)
    out: dict[str, int] = {}
    for key, svn in value.items():
        if key not in TCB_COMPONENTS:
            raise unknown_name(check, key, TCB_COMPONENTS, what="TCB component")
        out[key] = to_int(svn, f"{check}.{key}", 0, 255)
    return out


def _tcb_by_product_conv(value: Any, check: str) -> dict[str, dict[str, int]]:
    expect_table(value, check)
    out: dict[str, dict[str, int]] = {}
    for product, table in value.items():
        if product not in (*PRODUCTS, SIMULATED_PRODUCT):
            raise unknown_name(check, product, (*PRODUCTS, SIMULATED_PRODUCT), what="product")
        out[product] = _tcb_conv(table, f"{check}.{product}")
    return out


def _flags_conv(
    known: Mapping[str, int], forbidden: Mapping[str, str]
) -> Callable[[Any, str], dict[str, bool]]:
    def convert(value: Any, check: str) -> dict[str, bool]:
        expect_table(value, check)
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
                raise unknown_name(
                    check, key, [k for k in known if k not in forbidden], what="flag"
                )
            out[key] = to_bool(flag, f"{check}.{key}")
        return out

    return convert


def _version_conv(value: Any, check: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", value) if isinstance(value, str) else None
    if not match or int(match[1]) > 255 or int(match[2]) > 255:
        raise UsageError(check, 'must be "MAJOR.MINOR"', expected='e.g. "1.55"', actual=repr(value))
    return int(match[1]), int(match[2])


def _choices_conv(choices: Sequence[str]) -> Callable[[Any, str], tuple[str, ...]]:
    def convert(value: Any, check: str) -> tuple[str, ...]:
        items = to_list(value, check)
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
    "minimum_report_version": lambda v, c: to_int(v, c, 2, 255),
    "minimum_tcb": _tcb_conv,
    "minimum_tcb_by_product": _tcb_by_product_conv,
    "minimum_launch_tcb": _tcb_conv,
    "allow_debug": to_bool,
    "allow_migration_agent": to_bool,
    "guest_policy": _flags_conv(GUEST_POLICY_FLAGS, _DEDICATED_FLAGS),
    "minimum_abi": _version_conv,
    "platform_info": _flags_conv(PLATFORM_INFO_FLAGS, {}),
    "allowed_measurements": lambda v, c: pinned(v, c, hex_converter(48), how="tcme measure snp"),
    "host_data": _bytes_conv(32),
    "id_key_digests": _pinned_conv(48),
    "author_key_digests": _pinned_conv(48),
    "family_id": _bytes_conv(16),
    "image_id": _bytes_conv(16),
    "vmpl": lambda v, c: to_int(v, c, 0, 3),
    "minimum_guest_svn": lambda v, c: to_int(v, c, 0, 2**32 - 1),
    "report_data": _bytes_conv(64),
    "allowed_products": _choices_conv((*PRODUCTS, SIMULATED_PRODUCT)),
    "signing_keys": _choices_conv(SIGNING_KEYS),
    "allowed_chip_ids": _pinned_conv(64),
    "minimum_firmware": _version_conv,
    "minimum_build": lambda v, c: to_int(v, c, 0, 255),
    "require_crl": to_bool,
}
