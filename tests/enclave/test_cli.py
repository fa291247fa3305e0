"""``tcme enclave serve`` as a real process: serves attestations, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from attestation.binding import report_data_for
from attestation.policy import Policy, simulated_policy
from attestation.providers.simulated import SimulatedSnpProvider
from attestation.snp.simulate import DEFAULT_MEASUREMENT
from attestation.verifier import SnpInputs, verify_evidence
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import parse_claims, sha256

REPO = Path(__file__).resolve().parents[2]


def _tcme(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "tcme", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_sim_dir_without_simulated_is_usage_error_fail(tmp_path):
    proc = _tcme(
        "enclave",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--model",
        str(tmp_path / "m.gguf"),
        "--signature",
        str(tmp_path / "m.sig"),
        "--public-key",
        str(tmp_path / "k.pem"),
        "--sim-dir",
        str(tmp_path),
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--sim-dir only makes sense with --simulated" in err
    assert "Traceback" not in err


def test_wrong_model_key_is_rejected_fail(tmp_path, signed_model):
    from tcme.model import generate_signing_key

    gguf, signature, _ = signed_model
    _, other_public = generate_signing_key(tmp_path / "other")
    proc = _tcme(
        "enclave",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--model",
        str(gguf),
        "--signature",
        str(signature),
        "--public-key",
        str(other_public),
        "--simulated",
        "--sim-dir",
        str(tmp_path / "sim"),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "rejected" in err and "Traceback" not in err
    assert "listening" not in out


def test_unix_socket_in_a_missing_folder_is_usage_error_before_the_model_fail(
    tmp_path, signed_model
):
    # usage.md's `--listen unix:/run/tcme/enclave.sock` on a machine without /run/tcme: said
    # plainly (gRPC only says "Failed to bind"), and before the model is even verified (the
    # key here is the wrong one, which would be exit 1 if the model came first).
    from tcme.model import generate_signing_key

    gguf, signature, _ = signed_model
    _, other_public = generate_signing_key(tmp_path / "other")
    missing = tmp_path / "no-such-folder"
    proc = _tcme(
        "enclave", "serve", "--listen", f"unix:{missing}/enclave.sock", "--model", str(gguf),
        "--signature", str(signature), "--public-key", str(other_public),
        "--simulated", "--sim-dir", str(tmp_path / "sim"),
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "enclave.listen" in err and "the socket's folder does not exist" in err
    assert str(missing) in err and "Traceback" not in err
    assert "listening" not in out


@pytest.mark.model
def test_serve_simulated_attests_and_stops(tmp_path, signed_model):
    gguf, signature, public = signed_model
    ready = tmp_path / "ready"
    sim_dir = tmp_path / "sim"
    proc = _tcme(
        "enclave",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--model",
        str(gguf),
        "--signature",
        str(signature),
        "--public-key",
        str(public),
        "--simulated",
        "--sim-dir",
        str(sim_dir),
        "--ready-file",
        str(ready),
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "enclave did not start"
            time.sleep(0.1)
        address = ready.read_text().strip()
        with grpc.insecure_channel(address) as channel:
            stub = tcme_pb2_grpc.TcmeStub(channel)
            nonce = os.urandom(32)
            response = stub.Attest(tcme_pb2.AttestRequest(nonce=nonce), timeout=30)
        claims = parse_claims(response.claims)
        ark = SimulatedSnpProvider(sim_dir).ark_sha256
        verified = verify_evidence(
            response.evidence.report,
            policy=Policy.from_dict(simulated_policy(ark, DEFAULT_MEASUREMENT)),
            expected_report_data=report_data_for(claims.digest, sha256(b""), b"", nonce),
            inputs=[SnpInputs(certs=response.evidence.certs_pem)],
        )
        assert verified.simulated
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"tcme enclave listening on {address}" in out
    assert "SIMULATED" in err
