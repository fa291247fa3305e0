"""Exit codes by category for every party command that talks to a host (docs/usage.md).

0 accepted, 1 a check rejected, 2 malformed input or usage (before any network
call), 3 could not reach or talk to a service. The commands run in-process
through ``tcme.cli.main`` against the real enclave code and host proxy
(``attest_stack``: a really signed tiny file stands in for the model, so no
model is loaded) over real sockets.
"""

from __future__ import annotations

import datetime
import json
import socket

import pytest

from tcme.cli import EXIT_OK, EXIT_REJECT, EXIT_UNREACHABLE, EXIT_USAGE, main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def closed_port() -> str:
    """An address on which nothing listens (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def files(attest_stack, tmp_path, party_keys, contract_factory):
    """Policies (good, wrong model, malformed), a contract file, key files, a TLS root."""
    root = tmp_path
    contract = root / "contract.json"
    contract.write_bytes(contract_factory())
    good = root / "good.toml"
    good.write_text(
        'accept = ["sev-snp"]\n'
        "allow_simulated = true\n"
        f'simulated_ark_sha256 = ["{attest_stack.ark_sha256}"]\n'
        f'[snp]\nallowed_measurements = ["{attest_stack.measurement.hex()}"]\n'
        f'[model]\nroot_digest = "{attest_stack.identity.root_digest}"\n'
        f"signer = {json.dumps(attest_stack.identity.signer)}\n"
        f'[contract]\nfile = "{contract}"\n'
    )
    wrong = root / "wrong.toml"
    wrong.write_text(good.read_text().replace(attest_stack.identity.root_digest, "00" * 32))
    malformed = root / "malformed.toml"
    malformed.write_text("allow_simulated = maybe\n")
    for name, keys in party_keys.items():
        keys.save(root / f"{name}.key")
    tls_root = root / "ca.pem"
    tls_root.write_bytes(_self_signed_pem())
    return {
        "contract": contract,
        "good": good,
        "wrong": wrong,
        "malformed": malformed,
        "alice": root / "alice.key",
        "tls_root": tls_root,
        "dir": root,
    }


def _self_signed_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tcme test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


def _create(capsys, target, files) -> str:
    code, out, _ = run(
        capsys, "session", "create", target, "--contract", files["contract"],
        "--party", "alice", "--key", files["alice"],
    )  # fmt: skip
    assert code == EXIT_OK
    return out.strip()


# -- tcme attest -----------------------------------------------------------------------


def test_attest_accepts_0_rejects_1(capsys, attest_stack, files):
    code, out, _ = run(capsys, "attest", attest_stack.target, "--policy", files["good"])
    assert code == EXIT_OK and "ACCEPTED" in out
    assert "simulated root" in out and attest_stack.ark_sha256 in out
    assert "None" not in out  # absent values read "none"
    code, out, err = run(capsys, "attest", attest_stack.target, "--policy", files["wrong"])
    assert code == EXIT_REJECT and out == ""
    assert err.startswith("tcme attest: rejected: model.root_digest")


def test_attest_takes_digests_copied_in_either_form(capsys, attest_stack, files):
    # `tcme model verify` prints `sha256:<hex>` for both; its --json prints the root digest
    # bare. Either form pasted into [model] must pin the same model and signer.
    signer = attest_stack.identity.signer
    assert signer.startswith("sha256:")  # a key-signed model: its signer is a key digest
    policy = files["dir"] / "either-form.toml"
    policy.write_text(
        files["good"]
        .read_text()
        .replace(
            f'"{attest_stack.identity.root_digest}"',
            f'"sha256:{attest_stack.identity.root_digest}"',
        )
        .replace(f'"{signer}"', f'"{signer.removeprefix("sha256:").upper()}"')
    )
    code, out, err = run(capsys, "attest", attest_stack.target, "--policy", policy)
    assert code == EXIT_OK, err
    assert f"model signer       {signer}" in out
    other = policy.read_text().replace(signer.removeprefix("sha256:").upper(), "AB" * 32)
    policy.write_text(other)
    code, _, err = run(capsys, "attest", attest_stack.target, "--policy", policy)
    assert code == EXIT_REJECT
    assert "model.signer: the model was signed by another signer" in err
    assert f"expected sha256:{'ab' * 32}, got {signer}" in err


def test_attest_json_on_reject_is_one_document(capsys, attest_stack, files):
    code, out, err = run(
        capsys, "attest", attest_stack.target, "--policy", files["wrong"], "--json"
    )
    body = json.loads(out)
    assert code == EXIT_REJECT and err == ""
    assert body["verdict"] == "REJECTED" and body["exit_code"] == EXIT_REJECT
    assert body["check"] == "model.root_digest"
    assert "None" not in out


@pytest.mark.parametrize("policy", ["malformed", "missing"])
def test_attest_bad_policy_exits_2_before_any_call(capsys, files, policy):
    path = files.get(policy, files["dir"] / "no-such.toml")
    # The host does not exist: a usage error must be found before trying it.
    code, _, err = run(capsys, "attest", closed_port(), "--policy", path)
    assert code == EXIT_USAGE and "error:" in err


def test_attest_unreachable_host_exits_3(capsys, files):
    code, out, _ = run(capsys, "attest", closed_port(), "--policy", files["good"], "--json")
    assert code == EXIT_UNREACHABLE
    body = json.loads(out)
    assert body["verdict"] == "UNREACHABLE" and body["exit_code"] == EXIT_UNREACHABLE


def test_attest_tls_against_plaintext_exits_3(capsys, attest_stack, files):
    code, _, err = run(
        capsys, "attest", attest_stack.target, "--policy", files["good"],
        "--tls-root", files["tls_root"], "--timeout", "5",
    )  # fmt: skip
    assert code == EXIT_UNREACHABLE, err
    assert "unreachable:" in err


def test_attest_stopped_enclave_behind_proxy_exits_3(capsys, files):
    from host.server import create_server

    proxy, port = create_server("127.0.0.1:0", closed_port(), health_interval=0.2)
    proxy.start()
    try:
        code, _, err = run(capsys, "attest", f"127.0.0.1:{port}", "--policy", files["good"])
    finally:
        proxy.stop(0)
    assert code == EXIT_UNREACHABLE, err
    assert "unavailable" in err.lower()


# -- tcme session ----------------------------------------------------------------------


def test_session_create_status_abort(capsys, attest_stack, files):
    session = _create(capsys, attest_stack.target, files)
    code, out, _ = run(capsys, "session", "status", attest_stack.target, "--session", session)
    assert code == EXIT_OK and json.loads(out)["state"]
    code, out, _ = run(
        capsys, "session", "abort", attest_stack.target, "--session", session,
        "--party", "alice", "--key", files["alice"], "--json",
    )  # fmt: skip
    assert code == EXIT_OK and json.loads(out)["session_id"] == session


def test_session_unknown_id_is_rejected_1(capsys, attest_stack):
    code, _, err = run(capsys, "session", "status", attest_stack.target, "--session", "ab" * 16)
    assert code == EXIT_REJECT, err


def test_session_create_signed_by_another_key_is_rejected_1_in_plain_words(
    capsys, attest_stack, files
):
    code, out, err = run(
        capsys, "session", "create", attest_stack.target, "--contract", files["contract"],
        "--party", "alice", "--key", files["dir"] / "bob.key",
    )  # fmt: skip
    assert code == EXIT_REJECT and out == ""
    assert "create.signature: proposal not signed by the contract key of party 'alice'" in err
    assert "''s" not in err  # it read "by 'alice''s contract key"


def test_session_create_malformed_contract_exits_2(capsys, files):
    bad = files["dir"] / "bad-contract.json"
    bad.write_text("{not json")
    code, _, _ = run(
        capsys, "session", "create", closed_port(), "--contract", bad,
        "--party", "alice", "--key", files["alice"],
    )  # fmt: skip
    assert code == EXIT_USAGE


@pytest.mark.parametrize(
    "command",
    [
        ["session", "create", "{host}", "--contract", "{contract}", "--party", "alice",
         "--key", "{key}"],
        ["session", "status", "{host}", "--session", "ab"],
        ["session", "abort", "{host}", "--session", "ab", "--party", "alice", "--key", "{key}"],
        ["session", "submit", "{host}", "--session", "ab", "--party", "alice", "--key", "{key}",
         "--policy", "{policy}", "--value", "5"],
        ["session", "result", "{host}", "--session", "ab", "--party", "alice", "--key", "{key}",
         "--policy", "{policy}"],
        ["session", "run", "{host}", "--session", "ab", "--party", "alice", "--key", "{key}",
         "--policy", "{policy}", "--value", "5"],
    ],
)  # fmt: skip
def test_session_commands_unreachable_exit_3(capsys, files, command):
    values = {
        "host": closed_port(),
        "contract": files["contract"],
        "key": files["alice"],
        "policy": files["good"],
    }
    code, _, err = run(capsys, *(part.format(**values) for part in command))
    assert code == EXIT_UNREACHABLE, err


def test_session_submit_accepted_0(capsys, attest_stack, files):
    session = _create(capsys, attest_stack.target, files)
    code, out, err = run(
        capsys, "session", "submit", attest_stack.target, "--session", session,
        "--party", "alice", "--key", files["alice"], "--policy", files["good"],
        "--value", "12", "--json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert json.loads(out)["inputs_received"] == 1


@pytest.mark.parametrize("value", ["abc", "-5", "10000000000000000000000"])
def test_session_submit_bad_value_exits_2_and_sends_nothing(capsys, attest_stack, files, value):
    session = _create(capsys, attest_stack.target, files)
    code, out, err = run(
        capsys, "session", "submit", attest_stack.target, "--session", session,
        "--party", "alice", "--key", files["alice"], "--policy", files["good"], "--value", value,
    )  # fmt: skip
    assert code == EXIT_USAGE, err
    assert value not in out + err  # the party's input is never echoed
    assert "attestation verified" not in out  # no partial output before the error
    code, out, _ = run(capsys, "session", "status", attest_stack.target, "--session", session)
    assert json.loads(out)["submitted_parties"] == []


@pytest.mark.parametrize("command", ["submit", "run"])
@pytest.mark.parametrize("value", ["abc", "-5"])
def test_bad_value_exits_2_before_dialling_when_the_policy_holds_the_contract_file(
    capsys, files, command, value
):
    # The policy pins the contract by its file (no --contract): the values can be judged
    # locally, so a bad one is exit 2 even when no host answers (it was 3).
    code, out, err = run(
        capsys, "session", command, closed_port(), "--session", "ab" * 16,
        "--party", "alice", "--key", files["alice"], "--policy", files["good"], "--value", value,
    )  # fmt: skip
    assert code == EXIT_USAGE, err
    assert "input." in err and "unreachable" not in err
    assert value not in out + err


@pytest.mark.parametrize("command", ["submit", "result", "run"])
def test_session_party_commands_reject_wrong_model_1(capsys, attest_stack, files, command):
    session = _create(capsys, attest_stack.target, files)
    extra = ["--value", "12"] if command != "result" else ["--wait", "5"]
    code, _, err = run(
        capsys, "session", command, attest_stack.target, "--session", session,
        "--party", "alice", "--key", files["alice"], "--policy", files["wrong"], *extra,
    )  # fmt: skip
    assert code == EXIT_REJECT, err
    assert "model.root_digest" in err


def test_session_result_damaged_state_exits_2(capsys, files):
    state = files["dir"] / "damaged.state"
    state.write_text("{}")
    code, _, err = run(
        capsys, "session", "result", closed_port(), "--session", "ab", "--party", "alice",
        "--key", files["alice"], "--policy", files["good"], "--state", state,
    )  # fmt: skip
    assert code == EXIT_USAGE and "state" in err


def test_session_create_answer_for_another_contract_is_rejected_1(
    capsys, attest_stack, files, hostile_factory
):
    """A hostile proxy answers CreateSession with another contract's digest: refused, exit 1."""
    hostile = hostile_factory(attest_stack)

    def swap(response):
        response.contract_digest = bytes(32)
        return response

    hostile.responses["CreateSession"] = swap
    code, out, err = run(
        capsys, "session", "create", hostile.target, "--contract", files["contract"],
        "--party", "alice", "--key", files["alice"],
    )  # fmt: skip
    assert code == EXIT_REJECT and out == ""  # no session id printed
    (line,) = err.splitlines()
    assert line.startswith("tcme session create: rejected: session.contract_digest: ")
    # The honest answer passes through the same proxy.
    del hostile.responses["CreateSession"]
    assert _create(capsys, hostile.target, files)
