"""Whole sessions over real gRPC sockets with the real default model (simulated enclave)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from attestation.snp.simulate import DEFAULT_MEASUREMENT
from tcme.client import Party, RemoteError, TcmeClient

pytestmark = pytest.mark.model

ANSWERS = {"first", "second", "equal"}


def _run_parties(stack, policy, party_keys, session_id, values, timeout=120):
    """Run each party in its own thread and client, as separate processes would."""

    def one(name):
        with TcmeClient(stack.target) as client:
            party = Party(name, party_keys[name], policy, client)
            return party.run(session_id, values[name], timeout=timeout)

    with ThreadPoolExecutor(max_workers=len(values)) as pool:
        futures = {name: pool.submit(one, name) for name in values}
        return {name: future.result(timeout=timeout + 30) for name, future in futures.items()}


def test_millionaires_two_parties(model_stack, contract_factory, policy_for, party_keys):
    contract = contract_factory()
    policy = policy_for(model_stack, contract)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
    results = _run_parties(
        model_stack,
        policy,
        party_keys,
        session_id,
        {"alice": {"alice_wealth": 3_000_000}, "bob": {"bob_wealth": 5}},
    )
    (alice_att, alice), (bob_att, bob) = results["alice"], results["bob"]
    assert alice.outputs["richer"] in ANSWERS  # the 135M model may be wrong; the flow may not
    assert alice.outputs == bob.outputs
    # One receipt, signed once, naming both parties' inputs in contract order.
    assert alice.receipt.raw == bob.receipt.raw
    assert [r.party for r in alice.receipt.inputs] == ["alice", "bob"]
    assert alice.receipt.claims_digest == alice_att.claims.digest == bob_att.claims.digest
    assert "inputs" in alice.receipt.erased and "kv_cache" in alice.receipt.erased
    # Every party collected: the session is gone.
    with TcmeClient(model_stack.target) as client, pytest.raises(RemoteError) as info:
        client.get_session(session_id)
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_same_inputs_same_answer_deterministic(
    model_stack, contract_factory, policy_for, party_keys
):
    contract = contract_factory()
    policy = policy_for(model_stack, contract)
    values = {"alice": {"alice_wealth": 70}, "bob": {"bob_wealth": 9000}}
    answers = []
    for _ in range(2):
        with TcmeClient(model_stack.target) as client:
            session_id = client.create_session(
                contract, proposer="alice", keys=party_keys["alice"]
            ).session_id
        results = _run_parties(model_stack, policy, party_keys, session_id, values)
        answers.append(results["alice"][1].outputs["richer"])
    assert answers[0] == answers[1]


def test_invalid_input_ends_session_for_everyone_fail(
    model_stack, contract_factory, policy_for, party_keys
):
    import dataclasses

    from tcme.contract.constraints import IntegerConstraint
    from tcme.v1 import tcme_pb2
    from tcme.wire import seal_input

    contract = contract_factory()
    policy = policy_for(model_stack, contract)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
        alice = Party("alice", party_keys["alice"], policy, client)
        alice_att = alice.attest(session_id)
        submitted = alice.submit(alice_att, {"alice_wealth": 10})
        # Bob's client refuses out-of-range values, so seal past it with a widened copy of
        # the contract (same bytes and digest): only the enclave stands between him and it.
        bob_att = client.attest(policy, session_id)
        widened = dataclasses.replace(
            bob_att.contract,
            inputs=tuple(
                dataclasses.replace(i, constraint=IntegerConstraint(0, 10**15))
                if i.party == "bob"
                else i
                for i in bob_att.contract.inputs
            ),
        )
        sealed = seal_input(
            claims=bob_att.claims,
            contract=widened,
            session_id=session_id,
            party="bob",
            values={"bob_wealth": 10**12},
            signing_key=party_keys["bob"],
        )
        with pytest.raises(grpc.RpcError) as bob_error:
            client._stub.SubmitInput(
                tcme_pb2.SubmitInputRequest(
                    session_id=session_id, party="bob", enc=sealed.enc, ciphertext=sealed.ciphertext
                ),
                timeout=10,
            )
        with pytest.raises(RemoteError) as alice_error:
            alice.result(alice_att, submitted.sealed, timeout=10)
        with pytest.raises(RemoteError) as bob_again:
            client.get_result(bob_att, "bob", party_keys["bob"], None, timeout=10)
    assert bob_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # One public error for every party (and the proxy); no output anywhere. Only bob,
    # whose input it was, reads which check failed (sealed to his key).
    assert alice_error.value.code == bob_again.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert alice_error.value.check == "input.invalid" and alice_error.value.disclosure == "public"
    assert bob_error.value.details() in alice_error.value.message()
    assert "bob_wealth" not in alice_error.value.message()
    assert (
        bob_again.value.disclosure == "sealed" and bob_again.value.check == "input.bob.bob_wealth"
    )
    for err in (alice_error.value, bob_again.value):
        assert "1000000000000" not in err.message()  # the value is never echoed


def test_missing_party_times_out_cleanly_fail(
    model_stack, contract_factory, policy_for, party_keys
):
    contract = contract_factory(timeout_seconds=2)
    policy = policy_for(model_stack, contract)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
        alice = Party("alice", party_keys["alice"], policy, client)
        attestation = alice.attest(session_id)
        submitted = alice.submit(attestation, {"alice_wealth": 1})
        with pytest.raises(RemoteError) as alice_error:
            alice.result(attestation, submitted.sealed, timeout=30)
        # Bob shows up late: the same terminal error, no way to revive the session.
        with pytest.raises(RemoteError) as bob_error:
            client.attest(policy, session_id)
    assert alice_error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert bob_error.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert alice_error.value.message() == bob_error.value.message()


def test_party_deadline_shorter_than_session_deadline_exceeded(
    model_stack, contract_factory, policy_for, party_keys
):
    # The party's own call deadline crosses the host proxy to the enclave and back.
    contract = contract_factory(timeout_seconds=60)
    policy = policy_for(model_stack, contract)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
        alice = Party("alice", party_keys["alice"], policy, client)
        attestation = alice.attest(session_id)
        submitted = alice.submit(attestation, {"alice_wealth": 1})
        started = time.monotonic()
        with pytest.raises(RemoteError) as info:
            alice.result(attestation, submitted.sealed, timeout=0.5)
        elapsed = time.monotonic() - started
        # The enclave saw the party's deadline through the proxy: it answered "still
        # pending" just before it, or the deadline itself fired; never a hang.
        assert (info.value.code, info.value.check) in {
            (grpc.StatusCode.DEADLINE_EXCEEDED, "session.pending"),
            (grpc.StatusCode.DEADLINE_EXCEEDED, "GetResult.deadline_exceeded"),
        }
        assert elapsed < 5
        # The short wait did not end the session: it is still open for the others.
        assert client.get_session(session_id).state == "OPEN"
        client.abort(session_id, "alice", party_keys["alice"])


def test_abort_ends_session_for_everyone(model_stack, contract_factory, policy_for, party_keys):
    contract = contract_factory()
    policy = policy_for(model_stack, contract)
    with TcmeClient(model_stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
        attestation = client.attest(policy, session_id)
        assert client.abort(session_id, "bob", party_keys["bob"]) in {"FAILED"}
        with pytest.raises(RemoteError) as info:
            client.submit_input(attestation, "alice", party_keys["alice"], {"alice_wealth": 3})
    assert info.value.code == grpc.StatusCode.ABORTED


def _tcme(*args, timeout=300):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tcme", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_policy(path, stack, contract_file):
    path.write_text(
        'accept = ["sev-snp"]\n'
        "allow_simulated = true\n"
        f'simulated_ark_sha256 = ["{stack.ark_sha256}"]\n'
        f'[snp]\nallowed_measurements = ["{DEFAULT_MEASUREMENT.hex()}"]\n'
        "[model]\n"
        f'root_digest = "{stack.identity.root_digest}"\n'
        f"signer = {json.dumps(stack.identity.signer)}\n"
        "[contract]\n"
        f'file = "{contract_file}"\n'
    )


def test_cli_two_party_processes(model_stack, tmp_path):
    """The scripted path: keygen, contract, create, then each party in its own process."""
    import subprocess
    import sys
    from pathlib import Path

    template = Path(__file__).resolve().parents[2] / "examples/millionaires/contract.toml"
    for name in ("alice", "bob"):
        done = _tcme("session", "keygen", "--out", tmp_path / f"{name}.key", "--name", name)
        assert done.returncode == 0, done.stderr
    contract = tmp_path / "contract.json"
    done = _tcme(
        "session", "contract", "--template", template, "--out", contract,
        "--party-key", f"alice={tmp_path / 'alice.key.pub.json'}",
        "--party-key", f"bob={tmp_path / 'bob.key.pub.json'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("alice", "bob"):
        _write_policy(tmp_path / f"{name}.toml", model_stack, contract)
    # Unsigned creation is impossible from the CLI: --party and --key are required.
    refused = _tcme("session", "create", model_stack.target, "--contract", contract)
    assert refused.returncode == 2
    done = _tcme(
        "session", "create", model_stack.target, "--contract", contract,
        "--party", "alice", "--key", tmp_path / "alice.key",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    session_id = done.stdout.strip()
    assert len(bytes.fromhex(session_id)) == 16

    wealth = {"alice": "424242", "bob": "737373"}
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcme",
                "session",
                "run",
                model_stack.target,
                "--session",
                session_id,
                "--party",
                name,
                "--key",
                tmp_path / f"{name}.key",
                "--policy",
                tmp_path / f"{name}.toml",
                "--value",
                wealth[name],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alice", "bob")
    }
    outputs = {name: proc.communicate(timeout=300) for name, proc in procs.items()}
    answers = {}
    for name, (out, err) in outputs.items():
        assert procs[name].returncode == 0, err
        assert "SIMULATED" in out
        assert "receipt verified" in out
        other = "bob" if name == "alice" else "alice"
        assert wealth[other] not in out + err  # a party never sees the other's input
        line = next(x for x in out.splitlines() if "answer: richer = " in x)
        answers[name] = line.split("answer: richer = ")[1].strip()
    assert answers["alice"] == answers["bob"] in ANSWERS


def test_cli_submit_then_result_with_state_file(model_stack, tmp_path):
    """bob splits his side: submit (writes commitments only), then result in a new process."""
    import subprocess
    import sys
    from pathlib import Path

    template = Path(__file__).resolve().parents[2] / "examples/millionaires/contract.toml"
    for name in ("alice", "bob"):
        assert (
            _tcme("session", "keygen", "--out", tmp_path / f"{name}.key", "--name", name).returncode
            == 0
        )
    contract = tmp_path / "contract.json"
    made = _tcme(
        "session", "contract", "--template", template, "--out", contract,
        "--party-key", f"alice={tmp_path / 'alice.key.pub.json'}",
        "--party-key", f"bob={tmp_path / 'bob.key.pub.json'}",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    for name in ("alice", "bob"):
        _write_policy(tmp_path / f"{name}.toml", model_stack, contract)
    session_id = _tcme(
        "session", "create", model_stack.target, "--contract", contract,
        "--party", "bob", "--key", tmp_path / "bob.key",
    ).stdout.strip()  # fmt: skip
    common = ["--session", session_id, "--party", "bob", "--key", tmp_path / "bob.key"]
    common += ["--policy", tmp_path / "bob.toml", "--quiet"]
    state = tmp_path / "bob.state"
    submitted = _tcme("session", "submit", model_stack.target, *common, "--value", "55555555",
                      "--state", state)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert b"55555555" not in state.read_bytes()
    alice = subprocess.Popen(
        [sys.executable, "-m", "tcme", "session", "run", model_stack.target, "--session",
         session_id, "--party", "alice", "--key", str(tmp_path / "alice.key"), "--policy",
         str(tmp_path / "alice.toml"), "--value", "123", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    result = _tcme("session", "result", model_stack.target, *common, "--state", state, "--json")
    out, err = alice.communicate(timeout=300)
    assert result.returncode == 0, result.stderr
    assert alice.returncode == 0, err
    bob_view, alice_view = json.loads(result.stdout), json.loads(out)
    assert bob_view["receipt"]["own_input_commitment_checked"] is True
    assert bob_view["outputs"] == alice_view["outputs"]
    assert bob_view["outputs"]["richer"] in ANSWERS

    # A state file from another party is refused before anything is sent.
    wrong = _tcme("session", "result", model_stack.target, "--session", session_id, "--party",
                  "alice", "--key", tmp_path / "alice.key", "--policy", tmp_path / "alice.toml",
                  "--state", state)  # fmt: skip
    assert wrong.returncode == 2 and "state" in wrong.stderr


def test_cli_attest_accepts_and_rejects(model_stack, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text(
        'accept = ["sev-snp"]\n'
        "allow_simulated = true\n"
        f'simulated_ark_sha256 = ["{model_stack.ark_sha256}"]\n'
        f'[snp]\nallowed_measurements = ["{DEFAULT_MEASUREMENT.hex()}"]\n'
        f'[model]\nroot_digest = "{model_stack.identity.root_digest}"\n'
        f"signer = {json.dumps(model_stack.identity.signer)}\n"
    )
    done = _tcme("attest", model_stack.target, "--policy", policy, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["simulated"] is True
    assert summary["model_root_digest"] == model_stack.identity.root_digest
    assert summary["contract_digest"] is None

    text = _tcme("attest", model_stack.target, "--policy", policy)
    assert text.returncode == 0
    assert "SIMULATED" in text.stdout and model_stack.identity.root_digest in text.stdout

    wrong = tmp_path / "wrong.toml"
    wrong.write_text(policy.read_text().replace(model_stack.identity.root_digest, "00" * 32))
    rejected = _tcme("attest", model_stack.target, "--policy", wrong)
    assert rejected.returncode == 1
    reasons = [x for x in rejected.stderr.splitlines() if x.startswith("tcme attest: rejected: ")]
    assert len(reasons) == 1 and "model.root_digest" in reasons[0]
    assert "Traceback" not in rejected.stderr

    malformed = tmp_path / "bad.toml"
    malformed.write_text("allow_simulated = maybe\n")
    bad = _tcme("attest", model_stack.target, "--policy", malformed)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
