"""``tcme evidence verify|show`` on NVIDIA GPU reports: detected from the bytes, exit codes."""

from __future__ import annotations

import json

import pytest

from tcme.cli import main

FOLDER = "nvidia/nvsdk_gh100_535_86_rims"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gpu(vectors):
    folder = vectors / FOLDER
    if not folder.is_dir():
        pytest.skip(f"vector folder {folder} missing")
    return folder


def test_verify_with_matching_rim_accepts(capsys, gpu):
    code, out, _ = run(
        capsys,
        "evidence", "verify", str(gpu / "report.hex"),
        "--certs", str(gpu / "cert_chain.pem"),
        "--nonce", (gpu / "nonce.hex").read_text().strip(),
        "--rim", str(gpu / "vbios_rim_96.00.5E.00.01_2023-06.swidtag"),
        "--at", "2024-06-01T00:00:00Z", "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["tee"] == "nvidia-gpu" and result["product"] == "HOPPER"
    assert result["tcb"]["rim_matched_blocks"] == 12
    assert result["device"]["driver_version"] == "535.86.09"


@pytest.mark.parametrize(
    ("rim", "check"),
    [
        ("vbios_rim_96.00.5E.00.01_2023-12.xml", "nvidia.rim.measurements"),
        ("driver_rim_535.86.09_modified.xml", "nvidia.rim.digest"),
    ],
)
def test_verify_with_bad_rim_rejects(capsys, gpu, rim, check):
    code, _, err = run(
        capsys,
        "evidence", "verify", str(gpu / "report.bin"),
        "--certs", str(gpu / "cert_chain.pem"),
        "--nonce", (gpu / "nonce.hex").read_text().strip(),
        "--rim", str(gpu / rim), "--at", "2024-06-01T00:00:00Z",
    )  # fmt: skip
    assert code == 1
    assert check in err


def test_verify_wrong_nonce_rejects(capsys, gpu):
    code, _, err = run(
        capsys,
        "evidence", "verify", str(gpu / "report.bin"),
        "--certs", str(gpu / "cert_chain.pem"), "--nonce", "00" * 32,
    )  # fmt: skip
    assert code == 1 and "nvidia.nonce" in err


def test_verify_without_nonce_is_a_usage_error(capsys, gpu):
    code, out, err = run(
        capsys,
        "evidence",
        "verify",
        str(gpu / "report.bin"),
        "--certs",
        str(gpu / "cert_chain.pem"),
    )
    assert code == 2 and out == "" and "nonce" in err


def test_show_prints_every_field(capsys, vectors):
    code, out, _ = run(
        capsys, "evidence", "show", str(vectors / "nvidia/nvsdk_gb100_575/report.bin"), "--json"
    )
    assert code == 0
    fields = json.loads(out)
    assert fields["tee"] == "nvidia-gpu"
    assert fields["opaque"]["driver_version"] == "575.32"
    assert len(fields["measurements"]) == 64
    assert fields["request"]["nonce"].startswith("931d8dd0")


def test_doctor_reports_the_gpu_provider(capsys):
    code, out, _ = run(capsys, "doctor", "--json")
    gpu = json.loads(out)["gpu"]
    assert gpu["name"] == "nvml"
    assert isinstance(gpu["available"], bool) and gpu["reason"]
    del code  # 0 or 1 depending on this machine's CPU TEE; the GPU line is always there


def test_nvml_provider_unavailable_is_a_clear_error():
    from attestation.providers.errors import ProviderUnavailable
    from attestation.providers.nvidia_gpu import nvml_status, select_gpu_provider

    available, reason = nvml_status()
    if available:
        pytest.skip(f"this machine has NVML ({reason})")
    with pytest.raises(ProviderUnavailable) as err:
        select_gpu_provider("nvml")
    assert err.value.check.startswith("gpu.")
    assert select_gpu_provider("none") is None


def test_offload_to_an_unattested_gpu_is_refused(capsys, tmp_path):
    # The model must never reach a GPU the parties cannot verify: --n-gpu-layers needs
    # --gpu nvml, and the check runs before the model is even read.
    code, out, err = run(
        capsys,
        "enclave", "serve", "--listen", "127.0.0.1:0", "--simulated",
        "--sim-dir", str(tmp_path / "sim"),
        "--model", str(tmp_path / "m.gguf"), "--signature", str(tmp_path / "m.sig"),
        "--public-key", str(tmp_path / "k.pem"),
        "--gpu", "simulated", "--n-gpu-layers", "8",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "enclave.n_gpu_layers" in err
