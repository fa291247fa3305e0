"""``tcme measure``: SNP launch digests into reference values, TDX guidance and quote copy.

No real OVMF ships with the tests, so ``_ovmf`` builds the smallest image that
carries what sev-snp-measure reads: the OVMF GUID table (SEV-ES reset block,
SEV metadata, kernel-hashes table) and the "ASEV" metadata sections. The
measurement itself is computed by the real sev-snp-measure code.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tomllib
import uuid

import pytest

from attestation.errors import PolicyError
from attestation.policy import Policy, validate_report
from attestation.snp.abi import parse_report
from attestation.snp.simulate import SimulatedSnp
from tcme.cli import main

FOOTER_GUID = "96b582de-1fb2-45f7-baea-a366c55a082d"
RESET_BLOCK_GUID = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
METADATA_GUID = "dc886566-984a-4798-a75e-5585a7bf67cc"
HASH_TABLE_GUID = "7255371f-3a3b-4b04-927b-1da6efa8d454"


def _ovmf(size: int = 0x10000, *, kernel_hashes: bool = True) -> bytes:
    """A minimal AmdSev-style OVMF image (edk2 OvmfPkg ResetVector GUID table layout)."""

    def entry(guid: str, payload: bytes) -> bytes:
        return payload + struct.pack("<H", len(payload) + 18) + uuid.UUID(guid).bytes_le

    sections = [(0x800000, 0x1000, 1), (0x801000, 0x1000, 2), (0x802000, 0x1000, 3)]
    if kernel_hashes:
        sections.append((0x803000, 0x1000, 0x10))
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
    meta += b"".join(struct.pack("<III", *s) for s in sections)
    image = bytearray(size)
    image[size - 0x1000 : size - 0x1000 + len(meta)] = meta
    table = entry(RESET_BLOCK_GUID, struct.pack("<I", 0xFFFFF000 - 0x100))
    table += entry(METADATA_GUID, struct.pack("<I", 0x1000))
    if kernel_hashes:
        table += entry(HASH_TABLE_GUID, struct.pack("<II", 0x803400, 0x400))
    blob = table + struct.pack("<H", len(table) + 18) + uuid.UUID(FOOTER_GUID).bytes_le
    image[size - 32 - len(blob) : size - 32] = blob
    return bytes(image)


@pytest.fixture
def boot(tmp_path):
    (tmp_path / "OVMF.fd").write_bytes(_ovmf())
    (tmp_path / "vmlinuz").write_bytes(b"\x7fkernel" * 512)
    (tmp_path / "initrd.img").write_bytes(b"initrd" * 300)
    return tmp_path


def _snp_args(boot, *extra: str, vcpus: str = "4") -> list[str]:
    return [
        "measure",
        "snp",
        "--ovmf",
        str(boot / "OVMF.fd"),
        "--kernel",
        str(boot / "vmlinuz"),
        "--initrd",
        str(boot / "initrd.img"),
        "--append",
        "console=ttyS0 tcme.mode=enclave",
        "--vcpus",
        vcpus,
        *extra,
    ]


def _upstream(boot, *extra: str) -> str:
    """The same measurement from sev-snp-measure's own command line."""
    cmd = [sys.executable, "-m", "sevsnpmeasure.cli", "--mode", "snp", "--vcpus", "4"]
    cmd += ["--ovmf", str(boot / "OVMF.fd"), "--kernel", str(boot / "vmlinuz")]
    cmd += ["--initrd", str(boot / "initrd.img"), "--append", "console=ttyS0 tcme.mode=enclave"]
    done = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_snp_measurement_matches_sev_snp_measure_cli(boot, capsys):
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Milan")) == 0
    ours = capsys.readouterr().out.strip()
    assert len(ours) == 96
    assert ours == _upstream(boot, "--vcpu-type", "EPYC-Milan")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (["--vcpu-family-model-stepping", "25:17:0", "--vmm-type", "ec2"],
         ["--vcpu-family", "25", "--vcpu-model", "17", "--vcpu-stepping", "0",
          "--vmm-type", "ec2"]),
        (["--vcpu-sig", "0xa00f11", "--guest-features", "0x21"],
         ["--vcpu-sig", "0xa00f11", "--guest-features", "0x21"]),
    ],
)  # fmt: skip
def test_vcpu_and_vmm_options_map_like_upstream(boot, capsys, ours, theirs):
    assert main(_snp_args(boot, *ours)) == 0
    assert capsys.readouterr().out.strip() == _upstream(boot, *theirs)


def test_every_input_changes_the_measurement(boot, capsys):
    def measure(*args: str) -> str:
        assert main(list(args)) == 0
        return capsys.readouterr().out.strip()

    base = measure(*_snp_args(boot, "--vcpu-type", "EPYC-Milan"))
    more_cpus = measure(*_snp_args(boot, "--vcpu-type", "EPYC-Milan", vcpus="8"))
    genoa = measure(*_snp_args(boot, "--vcpu-type", "EPYC-Genoa"))
    (boot / "vmlinuz").write_bytes(b"\x7fkernel" * 511 + b"\x7fKERNEL")
    other_kernel = measure(*_snp_args(boot, "--vcpu-type", "EPYC-Milan"))
    assert len({base, more_cpus, genoa, other_kernel}) == 4


def test_reference_file_feeds_the_policy(boot, tmp_path, capsys):
    out = tmp_path / "reference.toml"
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Milan", "--out", str(out))) == 0
    digest = bytes.fromhex(capsys.readouterr().out.strip())
    text = out.read_text()
    assert tomllib.loads(text)["snp"]["allowed_measurements"] == [digest.hex()]
    assert "vmlinuz" in text and "console=ttyS0" in text  # provenance comments

    policy = Policy.load(out)  # the file is a complete evidence policy, as written
    assert policy.accept == ("sev-snp",)
    sim = SimulatedSnp(tmp_path / "sim")
    good = parse_report(sim.report(bytes(64), measurement=digest))
    validate_report(good, policy.snp)
    other = parse_report(sim.report(bytes(64)))  # the simulator's default measurement
    with pytest.raises(PolicyError) as info:
        validate_report(other, policy.snp)
    assert [v.check for v in info.value.violations] == ["measurement"]


def test_existing_out_needs_force(boot, tmp_path, capsys):
    out = tmp_path / "reference.toml"
    out.write_text("# mine\n")
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Milan", "--out", str(out))) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "# mine\n"
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Milan", "--out", str(out), "--force")) == 0
    assert "[snp]" in out.read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: (b / "OVMF.fd").write_bytes(bytes(0x10000)), "SEV-SNP capable OVMF"),
        (lambda b: (b / "OVMF.fd").write_bytes(_ovmf(kernel_hashes=False)), "SNP_KERNEL_HASHES"),
        (lambda b: (b / "vmlinuz").unlink(), "no such file"),
    ],
)
def test_bad_inputs_exit_2_with_a_reason_fail(boot, capsys, change, message):
    change(boot)
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Milan")) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_vcpu_type_required_and_checked_fail(boot, capsys):
    assert main(_snp_args(boot)) == 2
    assert "--vcpu-type" in capsys.readouterr().err
    assert main(_snp_args(boot, "--vcpu-type", "EPYC-Nope")) == 2
    assert "unknown vCPU type" in capsys.readouterr().err


def test_initrd_without_kernel_fail(boot, capsys):
    args = ["measure", "snp", "--ovmf", str(boot / "OVMF.fd"), "--vcpus", "1"]
    args += ["--vcpu-type", "EPYC-v4", "--initrd", str(boot / "initrd.img")]
    assert main(args) == 2
    assert "need --kernel" in capsys.readouterr().err


def test_tdx_prints_guidance(capsys):
    assert main(["measure", "tdx"]) == 0
    out = capsys.readouterr().out
    for word in ("MRTD", "RTMR0", "RTMR1", "RTMR2", "--from-quote", "pytdxmeasure"):
        assert word in out


def test_tdx_from_quote_copies_registers(vector, tmp_path, capsys):
    quote_path = vector("tdx/dcapqvl_v4_uptodate/quote.bin")
    quote = quote_path.read_bytes()
    out = tmp_path / "tdx.toml"
    assert main(["measure", "tdx", "--from-quote", str(quote_path), "--out", str(out)]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    # v4 quote: 48-byte header; in the TD report body MRTD is at 136, RTMR0..2 at 328.
    body = 48
    assert printed["mrtd"] == quote[body + 136 : body + 184].hex()
    for i in range(3):
        start = body + 328 + 48 * i
        assert printed[f"rtmr{i}"] == quote[start : start + 48].hex()
    loaded = Policy.load(out)  # the file is a complete evidence policy, as written
    assert loaded.accept == ("tdx",) and loaded.skipped() == []
    policy = loaded.tdx
    assert policy.mrtd == (bytes.fromhex(printed["mrtd"]),)
    assert policy.rtmr3 is None


def test_tdx_out_without_quote_fail(tmp_path, capsys):
    assert main(["measure", "tdx", "--out", str(tmp_path / "x.toml")]) == 2
    assert "--from-quote" in capsys.readouterr().err
