"""Test stand-in for an Azure confidential VM: a real software TPM (swtpm) as the vTPM.

Stands in for hardware, and says so: the paravisor and the AMD secure processor
are simulated, the TPM is real software. ``SimulatedAzureCvm``:

1. starts ``swtpm socket --tpm2`` on a Unix socket in ``directory``;
2. provisions, with ``tpm2-tools`` as an operator would, a restricted RSA-2048
   RSASSA-SHA256 signing key persisted at the Azure AK handle ``0x81000003``;
3. writes the runtime data (the AK as the JWK ``HCLAkPub``) and a SIMULATED
   SEV-SNP report over its SHA-256 (``attestation.snp.simulate``, VMPL 0) into
   an HCL report, stored at NV index ``0x01400001`` as Azure's paravisor does
   (or stores any given HCL report there, e.g. a real vector's);
4. extends a few PCRs, so quotes cover non-trivial values.

Quotes then come from the TPM through ``attestation.providers.tpm2`` exactly as
on Azure (``SocketTransport`` instead of ``/dev/tpmrm0``). Verifiers accept the
result only when their policy allows simulated evidence, as for the simulated
SEV-SNP provider. swtpm's NV indices hold at most 2048 bytes (Azure's hold 2600),
so the HCL buffer here is 2048 bytes; the report's own size fields say where it ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attestation.azure.hcl import build_hcl_report
from attestation.errors import UsageError
from attestation.providers.tpm2 import SocketTransport
from attestation.snp.simulate import SimulatedSnp

TOOLS = ("swtpm", "tpm2_createprimary", "tpm2_evictcontrol", "tpm2_nvdefine", "tpm2_nvwrite")
HCL_NV_INDEX = "0x01400001"
AK_HANDLE = "0x81000003"
NV_SIZE = 2048  # swtpm's TPM_PT_NV_INDEX_MAX
AK_ATTRIBUTES = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda"
START_TIMEOUT_S = 10.0
EXTENDED_PCRS = (4, 7, 11)


def missing_tools() -> list[str]:
    """The programs this simulation needs that are not on PATH (empty when all are)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class SimulatedAzureCvm:
    """swtpm provisioned like an Azure CVM's vTPM; ``transport()`` reaches it."""

    def __init__(self, directory: Path) -> None:
        missing = missing_tools()
        if missing:
            raise UsageError(
                "azure.simulate.tools",
                "the simulated Azure CVM needs swtpm and tpm2-tools",
                expected="apt-get install swtpm tpm2-tools",
                actual="missing " + ", ".join(missing),
            )
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket = self.directory / "tpm.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._start()

    def transport(self) -> SocketTransport:
        """How a provider reaches this vTPM (raw TPM commands over the Unix socket)."""
        return SocketTransport(self.socket)

    def provision(
        self,
        snp: SimulatedSnp,
        *,
        measurement: bytes | None = None,
        scheme: str = "rsassa-sha256",
    ) -> bytes:
        """Create the AK and store a SIMULATED HCL report naming it; returns the HCL report."""
        self._tool("tpm2_createprimary", "-C", "o", "-G", f"rsa2048:{scheme}:null",
                   "-a", AK_ATTRIBUTES, "-c", str(self.directory / "ak.ctx"), "-Q")  # fmt: skip
        self._tool("tpm2_evictcontrol", "-C", "o", "-c", str(self.directory / "ak.ctx"), AK_HANDLE)
        self._tool("tpm2_readpublic", "-c", AK_HANDLE, "-f", "pem",
                   "-o", str(self.directory / "ak.pem"), "-Q")  # fmt: skip
        ak = load_pem_public_key((self.directory / "ak.pem").read_bytes()).public_numbers()  # type: ignore[union-attr]
        runtime_data = json.dumps(
            {
                "keys": [
                    {
                        "kid": "HCLAkPub",
                        "key_ops": ["sign"],
                        "kty": "RSA",
                        "e": _b64url_int(ak.e),
                        "n": _b64url_int(ak.n),
                    }
                ],
                "vm-configuration": {
                    "console-enabled": False,
                    "secure-boot": True,
                    "tpm-enabled": True,
                    "vmUniqueId": "SIMULATED",
                },
                "user-data": "00" * 64,
            },
            separators=(",", ":"),
        ).encode()
        report_data = hashlib.sha256(runtime_data).digest() + bytes(32)
        report = snp.report(report_data, measurement=measurement, vmpl=0)
        hcl = build_hcl_report(report, runtime_data, buffer_size=NV_SIZE)
        self.store_hcl_report(hcl)
        for pcr in EXTENDED_PCRS:
            self._tool(
                "tpm2_pcrextend", f"{pcr}:sha256={hashlib.sha256(b'boot %d' % pcr).hexdigest()}"
            )
        return hcl

    def store_hcl_report(self, hcl: bytes) -> None:
        """Put ``hcl`` (at most 2048 bytes) at NV index 0x01400001, as the paravisor does."""
        path = self.directory / "hcl_report.bin"
        path.write_bytes(hcl)
        self._tool("tpm2_nvdefine", HCL_NV_INDEX, "-C", "o", "-s", str(len(hcl)),
                   "-a", "ownerwrite|ownerread|authread|authwrite")  # fmt: skip
        self._tool("tpm2_nvwrite", HCL_NV_INDEX, "-C", "o", "-i", str(path))

    def stop(self) -> None:
        """Stop swtpm (its state directory stays)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> SimulatedAzureCvm:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        state = self.directory / "state"
        state.mkdir(exist_ok=True)
        self._process = subprocess.Popen(  # fixed argv, no shell
            [
                "swtpm",
                "socket",
                "--tpm2",
                "--tpmstate",
                f"dir={state}",
                "--server",
                f"type=unixio,path={self.socket}",
                "--ctrl",
                f"type=unixio,path={self.socket}.ctrl",
                "--flags",
                "not-need-init,startup-clear",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.socket.exists() and Path(f"{self.socket}.ctrl").exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                err = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                self.stop()
                raise UsageError("azure.simulate.swtpm", f"swtpm did not start: {err.strip()}")
            time.sleep(0.02)

    def _tool(self, *argv: str) -> None:
        env = {**os.environ, "TPM2TOOLS_TCTI": f"swtpm:path={self.socket}"}
        done = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            raise UsageError(
                f"azure.simulate.{argv[0]}",
                done.stderr.decode(errors="replace").strip().splitlines()[-1:][0]
                if done.stderr
                else "failed",
            )


def _b64url_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
