"""Load test: while a stranger runs each denial-of-service pattern, the service stays up.

For each pattern of issue 11 (streams that send headers and nothing more,
floods of validly signed GetResult long polls on the attacker's own session,
CreateSession floods that fill session slots, contracts with a catastrophic
regular expression), a legitimate party's Attest calls keep a p99 under 1 s
and a full two-party session with the real default model completes, through
the real host proxy in front of a real (simulated-hardware) enclave, all on
loopback. Counts and times are bounded: each attack is a fixed number of
calls, stopped when the legitimate work is done.

The one timed assertion (Attest p99 < 1 s) is what the issue requires; it is
generous: an unloaded Attest through the proxy takes a few milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from attestation.policy import simulated_policy
from attestation.snp.simulate import DEFAULT_MEASUREMENT
from tcme.client import Party, PartyPolicy, TcmeClient
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import PartyKeys, canonical_contract

pytestmark = pytest.mark.model

ATTESTS = 40
P99_LIMIT_SECONDS = 1.0
SESSION_TIMEOUT = 180
FLOOD = 40
SLOT_FLOOD = 64
REPO = Path(__file__).resolve().parents[2]
ATTACKER = Path(__file__).resolve().parent / "dos_attacker.py"
TEMPLATE = REPO / "examples" / "millionaires" / "contract.toml"
PATTERNS = ("header_only_streams", "get_result_flood", "create_session_flood", "catastrophic_regex")


@pytest.fixture
def dos_stack(loaded_model, tmp_path_factory):
    """A fresh enclave and proxy per attack (a slot flood fills the session table)."""
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.inference import Inference
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from enclave.server import shutdown
    from host.server import create_server as create_host_server

    provider = SimulatedSnpProvider(tmp_path_factory.mktemp("dos-sim"))
    enclave = Enclave(
        provider=provider, model=loaded_model.identity, runner=Inference(loaded_model.llama).run
    )
    server, port = create_enclave_server("127.0.0.1:0", enclave)
    server.start()
    proxy, proxy_port = create_host_server("127.0.0.1:0", f"127.0.0.1:{port}")
    proxy.start()
    yield f"127.0.0.1:{proxy_port}", provider.ark_sha256, loaded_model.identity
    proxy.stop(0)
    shutdown(server, enclave, grace=0)


def _contract(keys: dict[str, PartyKeys]) -> bytes:
    with open(TEMPLATE, "rb") as handle:
        body = tomllib.load(handle)
    body["parties"] = [keys[n].public_entry(n) for n in ("alice", "bob")]
    return canonical_contract(body)


def _own_connection(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


@contextmanager
def attacker(pattern: str, target: str) -> Iterator[None]:
    """tests/e2e/dos_attacker.py running ``pattern`` in its own process until the block ends."""
    count = SLOT_FLOOD if pattern == "create_session_flood" else FLOOD
    process = subprocess.Popen(
        [sys.executable, str(ATTACKER), pattern, target, str(count)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", f"attacker {pattern} did not start ({line!r})"
        time.sleep(0.5)  # its calls reach the proxy
        yield
    finally:
        process.kill()
        process.wait(10)


# -- the legitimate parties -----------------------------------------------------------------


def _attest_latencies(target: str) -> list[float]:
    """ATTESTS Attest round trips on a party's own connection; a failure counts as infinite.

    They attest the enclave alone (no session id): the parties' session may end,
    and be erased, before the last of them.
    """
    seconds = []
    with _own_connection(target) as channel:
        stub = tcme_pb2_grpc.TcmeStub(channel)
        for _ in range(ATTESTS):
            started = time.monotonic()
            try:
                stub.Attest(
                    tcme_pb2.AttestRequest(nonce=os.urandom(32)),
                    timeout=5,
                )
                seconds.append(time.monotonic() - started)
            except grpc.RpcError:
                seconds.append(float("inf"))
            time.sleep(0.02)
    return seconds


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@pytest.mark.parametrize("attack", PATTERNS)
def test_attest_and_sessions_survive_attack(dos_stack, attack):
    target, ark_sha256, identity = dos_stack
    keys = {name: PartyKeys.generate() for name in ("alice", "bob")}
    contract = _contract(keys)
    policy = PartyPolicy.from_dict(
        {
            **simulated_policy(ark_sha256, DEFAULT_MEASUREMENT),
            "model": {"root_digest": identity.root_digest, "signer": identity.signer},
            "contract": {"digest": hashlib.sha256(contract).hexdigest()},
        }
    )
    # The parties agreed on their contract and opened the session before the attack.
    with TcmeClient(target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=keys["alice"]
        ).session_id
    values = {"alice": {"alice_wealth": 30}, "bob": {"bob_wealth": 7}}

    def party(name: str):
        with TcmeClient(target, timeout=30) as client:
            return Party(name, keys[name], policy, client).run(
                session_id, values[name], timeout=SESSION_TIMEOUT
            )

    with attacker(attack, target), ThreadPoolExecutor(max_workers=3) as pool:
        latencies = pool.submit(_attest_latencies, target)
        results = {name: pool.submit(party, name) for name in values}
        outcome = {n: f.result(timeout=SESSION_TIMEOUT + 30) for n, f in results.items()}
        seconds = latencies.result(timeout=SESSION_TIMEOUT)
    p99 = _p99(seconds)
    print(f"{attack}: Attest p50 {sorted(seconds)[len(seconds) // 2] * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms over {len(seconds)} calls")  # fmt: skip
    assert p99 < P99_LIMIT_SECONDS, f"Attest p99 {p99:.3f} s under {attack}"
    (_, alice), (_, bob) = outcome["alice"], outcome["bob"]
    assert alice.outputs["richer"] in {"first", "second", "equal"}
    assert alice.outputs == bob.outputs
    assert alice.receipt.raw == bob.receipt.raw
