"""host.backends: discovery, health, least-loaded choice and routes over real enclaves.

Three enclave servers (simulated SEV-SNP provider, the stand-in for hardware;
no model, since no session here gets its inputs) on 127.0.0.1; the pool is the
real code probing them over gRPC. DNS answers come from an injected resolver,
since one name cannot resolve to three ports of one loopback address.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from host.backends import GONE_AFTER_FAILURES, BackendPool, State, split_dns_target
from tcme.client import create_session_request
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import PartyKeys, canonical_contract
from tests.contracts import millionaires_contract


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "33" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract, values):
    raise AssertionError("the model must not run in this test")


@dataclass
class Running:
    enclave: Enclave
    server: grpc.Server
    target: str

    def create_session(self, contract: bytes, proposer: PartyKeys) -> bytes:
        with grpc.insecure_channel(self.target) as channel:
            return (
                tcme_pb2_grpc.TcmeStub(channel)
                .CreateSession(create_session_request(contract, "alice", proposer), timeout=10)
                .session_id
            )


@pytest.fixture
def enclaves(sim_provider):
    running = []
    for _ in range(3):
        enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run)
        server, port = create_server("127.0.0.1:0", enclave)
        server.start()
        running.append(Running(enclave, server, f"127.0.0.1:{port}"))
    yield running
    for r in running:
        shutdown(r.server, r.enclave, grace=0)


@pytest.fixture
def contract(parties):
    return canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    )


def _pool(targets=(), dns=(), **kwargs) -> BackendPool:
    pool = BackendPool(targets, dns, interval=3600, **kwargs)  # probed by hand: refresh()
    return pool


def test_routes_learned_and_sessions_spread_over_the_least_loaded(enclaves, contract, parties):
    pool = _pool([e.target for e in enclaves])
    pool.refresh()
    by_target = {b.target: b for b in pool.backends()}
    assert all(by_target[e.target].route == e.enclave.route for e in enclaves)
    assert all(b.state is State.SERVING for b in by_target.values())
    # The first enclave already holds two sessions (made without this proxy).
    enclaves[0].create_session(contract, parties["alice"])
    enclaves[0].create_session(contract, parties["alice"])
    pool.refresh()
    picks = [pool.choose().target for _ in range(4)]
    assert enclaves[0].target not in picks[:2]  # the emptier ones first
    assert sorted(picks) == sorted([enclaves[1].target, enclaves[2].target] * 2)
    # Any proxy finds a session's enclave from the session id alone.
    session_id = enclaves[2].create_session(contract, parties["alice"])
    assert pool.by_route(session_id).target == enclaves[2].target
    assert pool.by_route(b"\xff\xff\xff\xff" + session_id[4:]) is None
    assert pool.by_route(b"\x01") is None


def test_draining_backend_gets_no_new_sessions_but_keeps_its_route(enclaves, contract, parties):
    pool = _pool([e.target for e in enclaves])
    session_id = enclaves[0].create_session(contract, parties["alice"])
    enclaves[0].enclave.start_draining()
    pool.refresh()
    states = {b.target: b.state for b in pool.backends()}
    assert states[enclaves[0].target] is State.DRAINING
    assert all(pool.choose().target != enclaves[0].target for _ in range(6))
    assert pool.by_route(session_id).target == enclaves[0].target


def test_a_dead_backend_is_gone_at_the_next_probe_and_reported(enclaves, contract, parties):
    gone: list[str] = []
    pool = _pool([e.target for e in enclaves], on_gone=gone.append)
    pool.refresh()
    session_id = enclaves[1].create_session(contract, parties["alice"])
    shutdown(enclaves[1].server, enclaves[1].enclave, grace=0)
    pool.refresh()
    # One missed probe only stops new sessions (a loaded host may just be slow)...
    first = {b.target: b.state for b in pool.backends()}[enclaves[1].target]
    assert first is State.NOT_SERVING and gone == []
    for _ in range(GONE_AFTER_FAILURES - 1):
        pool.refresh()
    # ...several in a row make it gone, and the forwarder hears of it once.
    assert gone == [enclaves[1].target]
    pool.refresh()
    assert gone == [enclaves[1].target]
    backend = pool.by_route(session_id)
    assert backend.target == enclaves[1].target and backend.state is State.GONE
    assert all(pool.choose().target != enclaves[1].target for _ in range(6))
    assert pool.any_serving()


def test_a_backend_that_never_answers_stays_gone_without_flapping(caplog):
    # Nothing listens there. It is gone at the first probe and must stay gone: it used to
    # log "gone -> not-serving" at the next failed probe, then "-> gone" again, and tell
    # the forwarder twice.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sock.getsockname()[1]}"
    gone: list[str] = []
    pool = _pool([target], on_gone=gone.append, probe_timeout=1)
    states = []
    with caplog.at_level("INFO", logger="host.backends"):
        for _ in range(GONE_AFTER_FAILURES + 1):
            pool.refresh()
            states.append(pool.backends()[0].state)
    assert states == [State.GONE] * (GONE_AFTER_FAILURES + 1)
    assert gone == [target]
    changes = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
    assert len(changes) == 1 and "unknown -> gone" in changes[0], changes


def test_every_channel_to_an_enclave_caps_grpcs_reconnect_backoff(enclaves, monkeypatch):
    # gRPC's default backoff grows to 120 s: a restarted enclave stayed "gone" for 15 s
    # after a one-minute outage (two minutes after a long one). Measured by hand, not here
    # (no timed assertions in tests): this pins that the proxy's probe and forwarding
    # channels ask gRPC for the capped backoff.
    from host.server import create_server as create_proxy

    dialled: list[tuple[str, dict[str, int]]] = []
    sync_channel, aio_channel = grpc.insecure_channel, grpc.aio.insecure_channel

    def spy_sync(target, options=None, **kwargs):
        dialled.append(("probe", dict(options or ())))
        return sync_channel(target, options=options, **kwargs)

    def spy_aio(target, options=None, **kwargs):
        dialled.append(("forward", dict(options or ())))
        return aio_channel(target, options=options, **kwargs)

    monkeypatch.setattr(grpc, "insecure_channel", spy_sync)
    monkeypatch.setattr(grpc.aio, "insecure_channel", spy_aio)
    proxy, port = create_proxy("127.0.0.1:0", enclaves[0].target, health_interval=0.2)
    proxy.start()
    try:
        # A party's channel (not the proxy's); the call is forwarded: NOT_FOUND from the enclave.
        with sync_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError):
            tcme_pb2_grpc.TcmeStub(channel).GetSession(
                tcme_pb2.GetSessionRequest(session_id=enclaves[0].enclave.route + bytes(12)),
                timeout=10,
            )
    finally:
        proxy.stop(0)
    kinds = {kind for kind, _ in dialled}
    assert kinds == {"probe", "forward"}, dialled
    for _kind, options in dialled:
        assert options.get("grpc.max_reconnect_backoff_ms", 120_000) <= 1000, options


def test_nothing_serving_means_no_choice(enclaves):
    pool = _pool([e.target for e in enclaves])
    for e in enclaves:
        e.enclave.start_draining()
    pool.refresh()
    assert pool.choose() is None and not pool.any_serving()


def test_dns_backends_come_and_go_but_stay_while_they_hold_sessions(enclaves, contract, parties):
    answer = {"enclaves.test": [enclaves[0].target, enclaves[1].target]}
    pool = _pool(dns=["enclaves.test:7000"], resolver=lambda name, port: answer[name])
    pool.refresh()
    assert sorted(b.target for b in pool.backends()) == sorted(
        [enclaves[0].target, enclaves[1].target]
    )
    # Scale up: the new address appears at the next resolution.
    answer["enclaves.test"] = [e.target for e in enclaves]
    pool._next_resolve = 0
    pool.refresh()
    assert len(pool.backends()) == 3
    # enclaves[0] leaves DNS while it still holds a session: kept (a draining pod).
    session_id = enclaves[0].create_session(contract, parties["alice"])
    answer["enclaves.test"] = [enclaves[1].target, enclaves[2].target]
    pool._next_resolve = 0
    pool.refresh()
    assert pool.by_route(session_id).target == enclaves[0].target
    # ...and dropped once it holds none.
    enclaves[0].enclave.sessions.close()
    pool.refresh()
    assert enclaves[0].target not in {b.target for b in pool.backends()}


def test_failed_dns_lookup_keeps_the_backends(enclaves):
    calls = {"n": 0}

    def flaky(name, port):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("temporary failure in name resolution")
        return [enclaves[0].target]

    pool = _pool(dns=["enclaves.test:7000"], resolver=flaky)
    pool.refresh()
    pool._next_resolve = 0
    pool.refresh()
    assert [b.target for b in pool.backends()] == [enclaves[0].target]


@pytest.mark.parametrize("bad", ["enclaves", "enclaves:", ":7000", "enclaves:http", "e:70000"])
def test_dns_target_must_be_name_and_port_fail(bad):
    with pytest.raises(ValueError):
        split_dns_target(bad)


def test_real_dns_resolution_gives_targets():
    from host.backends import resolve_dns

    assert "127.0.0.1:7000" in resolve_dns("localhost", 7000)
