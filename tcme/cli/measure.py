"""``tcme measure``: reference values, i.e. what a good launch measurement is.

``tcme measure snp`` computes the SEV-SNP launch digest (MEASUREMENT) of a
guest from the exact firmware, kernel, initrd and command line it boots, with
the ``sev-snp-measure`` package, and writes a reference-values TOML with
``[snp] allowed_measurements``: the key ``attestation.policy`` reads.

``tcme measure tdx`` explains where MRTD and RTMR0..3 come from and how to
obtain them; with ``--from-quote`` it copies them out of a quote taken from a
reference TD you launched yourself. It computes nothing it cannot compute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from attestation.errors import UsageError
from attestation.tee import Tee
from tcme.cli.exitcodes import EXIT_OK

# Guest feature bits sev-snp-measure defaults to (SNPActive); QEMU's default.
DEFAULT_GUEST_FEATURES = 0x1
VMM_TYPES = ("QEMU", "ec2", "gce")

TDX_GUIDANCE = """\
TDX reference values: MRTD and RTMR0..RTMR3 (48 bytes each, SHA-384)

  MRTD   the TD's initial memory as the VMM built it: the TDX virtual firmware
         (TDVF, OVMF built for TDX) and its metadata. Fixed for one firmware build
         and VMM; it does not cover the kernel.
  RTMR0  firmware configuration: TD HOB, configuration volume (UEFI variables,
         Secure Boot keys), ACPI tables. Depends on vCPU count, memory size and
         devices, so it changes with the instance shape.
  RTMR1  direct boot: the kernel (and command line); grub/UKI boot: the OS loader.
  RTMR2  grub/UKI boot: the kernel, command line and initrd as the loader
         measured them; direct boot: unused.
  RTMR3  extended by software at run time; tcme does not pin it by default.
  (Split between RTMR1 and RTMR2 follows the TDVF/boot-loader event log; check
  yours before pinning.)

How to obtain them
  1. Launch the exact image, on the same instance type (or VMM command line),
     as a reference TD you control and trust, then take a quote in it and run
         tcme measure tdx --from-quote QUOTE --out reference.toml
     which writes [tdx] mrtd/rtmr0/rtmr1/rtmr2. Values are exactly as good as
     that reference launch: use a fresh instance and an image you built.
  2. Cross-check from the image and the TD's event log: Intel's pytdxmeasure
     (PyPI) replays the CCEL event log inside a TD against the RTMRs; image
     tools such as dstack-mr compute MRTD and RTMR0..2 from the firmware,
     kernel, initrd and command line for a given VMM configuration.
  3. On clouds whose firmware you do not build (e.g. GCE), use the provider's
     published firmware reference values/endorsements for MRTD (Google's
     gce-tcb-verifier), and pin RTMR1/RTMR2 from your own image.

The file is a complete evidence policy (accept = ["tdx"] and [tdx]): check a quote
with tcme evidence verify QUOTE --policy reference.toml, and append [model] and
[contract] to make it a party policy. MRTD and RTMR0-2 must be pinned or skipped
explicitly ({ skip = true }); RTMR3 and the other registers are optional.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme measure snp`` and ``tcme measure tdx``."""
    group = subparsers.add_parser(
        "measure",
        help="compute or collect reference measurements (SNP launch digest, TDX MRTD/RTMRs)",
        description=(
            "Reference values say what a good launch looks like. `snp` computes the SEV-SNP "
            "launch measurement from the boot artefacts; `tdx` explains how to obtain MRTD and "
            "RTMR values and can copy them from a reference quote."
        ),
    )
    sub = group.add_subparsers(dest="measure_command", metavar="COMMAND", required=True)

    snp = sub.add_parser(
        "snp",
        help="compute the expected SEV-SNP launch measurement (sev-snp-measure)",
        description=(
            "Computes MEASUREMENT for a QEMU/EC2/GCE SEV-SNP guest booted with this OVMF and "
            "(optionally) direct-boot kernel, initrd and command line, and writes "
            'accept = ["sev-snp"] and [snp] allowed_measurements to a policy TOML (complete as '
            "written; append [model] and [contract] for a party policy)."
        ),
    )
    snp.add_argument("--ovmf", type=Path, required=True, metavar="FILE", help="OVMF (AmdSev) image")
    snp.add_argument("--kernel", type=Path, metavar="FILE", help="kernel for direct boot")
    snp.add_argument("--initrd", type=Path, metavar="FILE", help="initrd (needs --kernel)")
    snp.add_argument("--append", metavar="CMDLINE", help="kernel command line (needs --kernel)")
    snp.add_argument("--vcpus", type=int, required=True, metavar="N", help="number of vCPUs")
    cpu = snp.add_mutually_exclusive_group()
    cpu.add_argument("--vcpu-type", metavar="TYPE", help="QEMU CPU model, e.g. EPYC-Milan, EPYC-v4")
    cpu.add_argument("--vcpu-sig", metavar="VALUE", help="CPUID signature (e.g. 0xa00f11)")
    cpu.add_argument(
        "--vcpu-family-model-stepping",
        metavar="F:M:S",
        help="CPUID family:model:stepping in decimal, e.g. 25:1:1",
    )
    snp.add_argument(
        "--vmm-type",
        choices=VMM_TYPES,
        default="QEMU",
        help="who builds the guest's initial state (default QEMU; ec2 and gce differ)",
    )
    snp.add_argument(
        "--guest-features",
        default=hex(DEFAULT_GUEST_FEATURES),
        metavar="HEX",
        help=f"SEV features in the VMSA (default {hex(DEFAULT_GUEST_FEATURES)})",
    )
    snp.add_argument("--out", type=Path, metavar="FILE", help="write the reference-values TOML")
    snp.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    snp.add_argument("--json", action="store_true", help="print the measurement as JSON")
    snp.set_defaults(handler=_measure_snp)

    tdx = sub.add_parser(
        "tdx",
        help="how to obtain MRTD/RTMR reference values; copy them from a reference quote",
        description=TDX_GUIDANCE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tdx.add_argument(
        "--from-quote",
        type=Path,
        metavar="FILE",
        help="TD quote from a reference launch: print (and with --out write) its MRTD/RTMRs",
    )
    tdx.add_argument("--out", type=Path, metavar="FILE", help="write the reference-values TOML")
    tdx.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    tdx.add_argument("--json", action="store_true", help="print the registers as JSON")
    tdx.set_defaults(handler=_measure_tdx)


# -- SEV-SNP ---------------------------------------------------------------------------


def snp_launch_measurement(
    *,
    ovmf: Path,
    vcpus: int,
    vcpu_sig: int,
    kernel: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    vmm_type: str = "QEMU",
    guest_features: int = DEFAULT_GUEST_FEATURES,
) -> bytes:
    """The 48-byte SEV-SNP launch digest of this boot configuration (sev-snp-measure).

    Raises UsageError for missing files, impossible combinations, or firmware
    that is not an SEV-capable OVMF.
    """
    try:
        from sevsnpmeasure import guest, vmm_types
        from sevsnpmeasure.sev_mode import SevMode
    except ImportError as err:  # pragma: no cover - declared dependency
        raise UsageError("measure.dependency", "the sev-snp-measure package is missing") from err
    for label, path in (("ovmf", ovmf), ("kernel", kernel), ("initrd", initrd)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"measure.{label}", f"no such file: {path}")
    if (initrd is not None or append is not None) and kernel is None:
        raise UsageError("measure.kernel", "--initrd and --append need --kernel (direct boot)")
    if vcpus < 1:
        raise UsageError("measure.vcpus", "need at least one vCPU", expected=">= 1", actual=vcpus)
    if vmm_type not in VMM_TYPES:
        raise UsageError(
            "measure.vmm_type", "unknown VMM type", expected=VMM_TYPES, actual=vmm_type
        )
    try:
        digest = guest.calc_launch_digest(
            SevMode.SEV_SNP,
            vcpus,
            vcpu_sig,
            str(ovmf),
            str(kernel) if kernel else None,
            str(initrd) if initrd else None,
            append,
            guest_features,
            "",
            vmm_types.VMMType[vmm_type],
        )
    except (RuntimeError, ValueError, AssertionError, KeyError) as err:
        raise UsageError(
            "measure.ovmf",
            f"cannot measure this boot configuration: {err or type(err).__name__} "
            "(is the firmware an SEV-SNP capable OVMF, e.g. the AmdSev build?)",
        ) from err
    return bytes(digest)


def resolve_vcpu_sig(
    vcpu_type: str | None, vcpu_sig: str | None, family_model_stepping: str | None
) -> int:
    """The CPUID signature from exactly one of the three ways to name it."""
    from sevsnpmeasure import vcpu_types

    if vcpu_sig is not None:
        try:
            return int(vcpu_sig, 0)
        except ValueError:
            raise UsageError("measure.vcpu_sig", "not an integer", actual=vcpu_sig) from None
    if family_model_stepping is not None:
        try:
            family, model, stepping = (int(p) for p in family_model_stepping.split(":"))
        except ValueError:
            raise UsageError(
                "measure.vcpu_family_model_stepping",
                "expected three decimal numbers",
                expected="F:M:S, e.g. 25:1:1",
                actual=family_model_stepping,
            ) from None
        return vcpu_types.cpu_sig(family, model, stepping)
    if vcpu_type is not None:
        if vcpu_type not in vcpu_types.CPU_SIGS:
            raise UsageError(
                "measure.vcpu_type",
                "unknown vCPU type",
                expected=", ".join(vcpu_types.CPU_SIGS),
                actual=vcpu_type,
            )
        return vcpu_types.CPU_SIGS[vcpu_type]
    raise UsageError(
        "measure.vcpu_type",
        "the VMSA records the vCPU signature: give --vcpu-type, --vcpu-sig or "
        "--vcpu-family-model-stepping",
    )


def _measure_snp(args: argparse.Namespace) -> int:
    vcpu_sig = resolve_vcpu_sig(args.vcpu_type, args.vcpu_sig, args.vcpu_family_model_stepping)
    try:
        features = int(args.guest_features, 0)
    except ValueError:
        raise UsageError(
            "measure.guest_features", "not an integer", actual=args.guest_features
        ) from None
    _check_out(args.out, args.force)
    digest = snp_launch_measurement(
        ovmf=args.ovmf,
        vcpus=args.vcpus,
        vcpu_sig=vcpu_sig,
        kernel=args.kernel,
        initrd=args.initrd,
        append=args.append,
        vmm_type=args.vmm_type,
        guest_features=features,
    )
    provenance = [
        f"ovmf    {args.ovmf.name}  sha256:{_sha256(args.ovmf)}",
        *([f"kernel  {args.kernel.name}  sha256:{_sha256(args.kernel)}"] if args.kernel else []),
        *([f"initrd  {args.initrd.name}  sha256:{_sha256(args.initrd)}"] if args.initrd else []),
        *([f"append  {args.append!r}"] if args.append is not None else []),
        f"vcpus {args.vcpus}, vcpu signature {vcpu_sig:#x}, vmm {args.vmm_type}, "
        f"guest features {features:#x}",
    ]
    text = reference_values_toml("snp", {"allowed_measurements": [digest.hex()]}, provenance)
    if args.out is not None:
        _write(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.json:
        body = {
            "tee": "sev-snp",
            "measurement": digest.hex(),
            "provenance": provenance,
            "out": str(args.out) if args.out else None,
        }
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(digest.hex())
    return EXIT_OK


# -- TDX -------------------------------------------------------------------------------

# attestation.tdx.policy keys; RTMR3 is extended at run time and left unpinned.
TDX_REGISTERS = ("mrtd", "rtmr0", "rtmr1", "rtmr2")


def _measure_tdx(args: argparse.Namespace) -> int:
    if args.from_quote is None:
        if args.out is not None:
            raise UsageError(
                "measure.tdx", "nothing to write: --out needs --from-quote (see the guidance)"
            )
        if args.json:
            print(json.dumps({"tee": "tdx", "guidance": TDX_GUIDANCE}, indent=2))
        else:
            print(TDX_GUIDANCE, end="")
        return EXIT_OK
    from attestation.inputs import read_input
    from attestation.tdx.abi import parse_quote

    _check_out(args.out, args.force)
    body = parse_quote(read_input(args.from_quote, "measure.quote")).body
    registers = {"mrtd": body.mr_td, **{f"rtmr{i}": body.rtmrs[i] for i in range(3)}}
    values = {key: [bytes(registers[key]).hex()] for key in TDX_REGISTERS}
    if args.json:
        summary = {"tee": "tdx", **{key: value for key, (value,) in values.items()}}
        print(json.dumps({**summary, "out": str(args.out) if args.out else None}, indent=2))
    else:
        for key, (value,) in values.items():
            print(f"{key:6} {value}")
    if args.out is not None:
        provenance = [
            f"copied from quote {args.from_quote.name}  sha256:{_sha256(args.from_quote)}",
            "rtmr3 is extended at run time and left unpinned",
        ]
        _write(args.out, reference_values_toml("tdx", values, provenance))
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


# -- output ----------------------------------------------------------------------------


_TABLE_KIND = {"snp": Tee.SEV_SNP.value, "tdx": Tee.TDX.value}


def reference_values_toml(table: str, values: dict[str, list[str]], provenance: list[str]) -> str:
    """A complete evidence policy: provenance comments, ``accept``, then ``[table]`` (hex lists).

    The file loads as it is (``tcme evidence verify --policy FILE``); a party policy is
    this file with ``[model]`` and ``[contract]`` appended (docs/security.md).
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# Reference values written by `tcme measure {table}` at {stamp}."]
    lines += [f"#   {line}" for line in provenance]
    lines += ["# Append [model] and [contract] to make this a party policy (docs/security.md)."]
    lines += ["", f'accept = ["{_TABLE_KIND[table]}"]', "", f"[{table}]"]
    for key, items in values.items():
        quoted = ", ".join(f'"{item}"' for item in items)
        lines.append(f"{key} = [{quoted}]")
    return "\n".join(lines) + "\n"


def _check_out(out: Path | None, force: bool) -> None:
    if out is not None and out.exists() and not force:
        raise UsageError("measure.out", f"{out} exists (pass --force to overwrite)")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UsageError("measure.out", f"cannot write {path}: {err.strerror}") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
