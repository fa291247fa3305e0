"""Three SIMULATED enclaves and two host proxies, each its own process, real model.

The scenario of ``scripts/fleet_demo.py`` (which the README runs by hand), with
its claims asserted: every session completes, sessions spread over the
enclaves, a session created through one proxy is finished through the other,
killing one enclave fails only its own sessions (UNAVAILABLE, saying the
enclave is gone) while new sessions still succeed, and a draining enclave
finishes the session it holds, takes no new one, then exits 0.

Only the SEV-SNP hardware is simulated; the parties verify the simulated
evidence under policies that allow exactly that root.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tcme.client.errors import RemoteError

REPO = Path(__file__).resolve().parents[2]
ANSWERS = {"first", "second", "equal"}


def _load_demo():
    spec = importlib.util.spec_from_file_location("fleet_demo", REPO / "scripts" / "fleet_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _model() -> Path | None:
    import os

    env = os.environ.get("TCME_MODEL")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = sorted((REPO / "models").glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def demo():
    return _load_demo()


@pytest.fixture(scope="module")
def fleet(demo, tmp_path_factory):
    model = _model()
    if model is None:
        pytest.skip("default model not found: run `make model` (or set TCME_MODEL)")
    running = demo.Fleet(tmp_path_factory.mktemp("fleet"), model, drain_seconds=120)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def parties(demo):
    return demo.Parties()


def _all_ok(outcome) -> bool:
    return all(o.ok and o.output in ANSWERS for o in outcome.values())


def test_sessions_through_both_proxies_complete_and_spread(fleet, parties):
    p0, p1 = fleet.proxy_targets

    def session(k: int):
        create, run = (p0, p1) if k % 2 == 0 else (p1, p0)
        session_id = parties.create(create)
        # Created through one proxy, run to the end (attest, submit, result) through the other.
        return session_id, parties.run(fleet, session_id, {"alice": run, "bob": run})

    with ThreadPoolExecutor(max_workers=6) as pool:
        done = list(pool.map(session, range(6)))
    failed = [(sid.hex(), o) for sid, o in done if not _all_ok(o)]
    assert not failed
    spread = Counter(fleet.enclave_of(sid) for sid, _ in done)
    assert len(spread) >= 2, spread  # least-loaded choice uses more than one enclave
    # Both parties of a session get the same answer from the same enclave.
    assert all(o["alice"].output == o["bob"].output for _, o in done)


def test_killing_an_enclave_fails_only_its_sessions(fleet, parties):
    p0, p1 = fleet.proxy_targets
    # Sessions until every live enclave holds one (creation spreads them).
    by_enclave: dict[str, bytes] = {}
    for _ in range(12):
        session_id = parties.create(p0)
        by_enclave.setdefault(fleet.enclave_of(session_id), session_id)
        if len(by_enclave) == fleet.enclaves:
            break
    assert len(by_enclave) == fleet.enclaves
    victim = sorted(by_enclave)[0]
    holds = {name: threading.Event() for name in by_enclave}
    submitted = {name: threading.Event() for name in by_enclave}
    with ThreadPoolExecutor(max_workers=len(by_enclave)) as pool:
        runs = {
            name: pool.submit(
                parties.run,
                fleet,
                session_id,
                {"alice": p0, "bob": p1},
                hold_bob=holds[name],
                alice_submitted=submitted[name],
            )
            for name, session_id in by_enclave.items()
        }
        for event in submitted.values():
            assert event.wait(60)
        # Alice has submitted everywhere and waits on GetResult; bob has not come yet.
        fleet.members[victim].process.send_signal(signal.SIGKILL)
        fleet.members[victim].process.wait(timeout=30)
        for event in holds.values():
            event.set()
        outcomes = {name: run.result(timeout=300) for name, run in runs.items()}
    for name, outcome in outcomes.items():
        if name != victim:
            assert _all_ok(outcome), (name, outcome)
            continue
        for party in outcome.values():
            assert isinstance(party.error, RemoteError), party
            assert party.error.code == grpc.StatusCode.UNAVAILABLE
            assert "gone" in str(party.error)
    # New sessions still succeed, on the enclaves that are left.
    for proxy in (p0, p1):
        session_id = parties.create(proxy)
        assert fleet.enclave_of(session_id) != victim
        assert _all_ok(parties.run(fleet, session_id, {"alice": p1, "bob": p0}))


def test_a_draining_enclave_finishes_its_session_then_exits(fleet, parties):
    p0, p1 = fleet.proxy_targets
    alive = [i for i in range(fleet.enclaves) if fleet.enclave(i).alive]
    assert len(alive) >= 2
    target = fleet.enclave(alive[0])
    for _ in range(20):
        session_id = parties.create(p1)
        if fleet.enclave_of(session_id) == target.name:
            break
    else:
        pytest.fail(f"no session landed on {target.name}")
    target.process.send_signal(signal.SIGTERM)
    assert fleet.wait_until(lambda: fleet.status(target.target).draining)
    # Both proxies learn it drains: new sessions go elsewhere (the enclave refuses them too).
    for proxy in (p0, p1, p0, p1):
        assert fleet.enclave_of(parties.create(proxy)) != target.name
    # The session it holds still runs to the end, through either proxy.
    assert _all_ok(parties.run(fleet, session_id, {"alice": p0, "bob": p1}))
    assert target.process.wait(timeout=120) == 0
