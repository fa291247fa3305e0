"""One enclave as a fleet member: route tag in every session id, Fleet.Status, drain.

Real gRPC on 127.0.0.1; evidence from the simulated SEV-SNP provider (the
stand-in for hardware). These enclaves never run a model: the tests stop
before any input is complete.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from enclave.fleet import FLEET_SERVICE, TCME_SERVICE, drain
from enclave.runtime import ROUTE_SIZE, Enclave
from enclave.server import create_server, shutdown
from tcme.v1 import fleet_pb2, fleet_pb2_grpc, tcme_pb2, tcme_pb2_grpc
from tcme.wire import (
    canonical_contract,
    error_info,
    sign_abort_request,
    sign_result_request,
)
from tests.contracts import millionaires_contract

TIMEOUT = 10


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "22" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract, values):
    raise AssertionError("the model must not run in this test")


@pytest.fixture
def served(sim_provider):
    enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run, max_sessions=7)
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield enclave, server, channel
    channel.close()
    shutdown(server, enclave, grace=0)


def _contract(parties):
    return canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    )


def test_session_ids_start_with_the_enclave_route(served, sim_provider, parties):
    enclave, _, channel = served
    stub = tcme_pb2_grpc.TcmeStub(channel)
    ids = [
        stub.CreateSession(
            tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
        ).session_id
        for _ in range(3)
    ]
    assert len(enclave.route) == ROUTE_SIZE
    assert all(len(i) == 16 and i[:ROUTE_SIZE] == enclave.route for i in ids)
    assert len(set(ids)) == 3  # the rest stays random
    other = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run)
    assert other.route != enclave.route  # a new process is a new route
    other.close()


def test_fleet_status_reports_route_load_and_drain(served, parties):
    enclave, _, channel = served
    fleet = fleet_pb2_grpc.FleetStub(channel)
    before = fleet.Status(fleet_pb2.FleetStatusRequest(), timeout=TIMEOUT)
    assert (before.route, before.live_sessions, before.max_sessions, before.draining) == (
        enclave.route,
        0,
        7,
        False,
    )
    tcme_pb2_grpc.TcmeStub(channel).CreateSession(
        tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
    )
    enclave.start_draining()
    after = fleet.Status(fleet_pb2.FleetStatusRequest(), timeout=TIMEOUT)
    assert (after.live_sessions, after.draining) == (1, True)


def test_drain_refuses_new_sessions_and_waits_for_live_ones(served, parties):
    enclave, server, channel = served
    stub = tcme_pb2_grpc.TcmeStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    session_id = stub.CreateSession(
        tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
    ).session_id
    result: list[int] = []
    drainer = threading.Thread(
        target=lambda: result.append(drain(enclave, server.health_servicer, grace=60))
    )
    drainer.start()
    while not enclave.draining:  # the drain thread has started
        drainer.join(0.01)
    try:
        # New sessions: refused with UNAVAILABLE and a reason a proxy can act on.
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateSession(
                tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(refused.value)["reason"] == "enclave.draining"
        for name in ("", TCME_SERVICE):
            status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Liveness stays SERVING: Kubernetes must not restart an enclave mid-drain.
        alive = health.Check(health_pb2.HealthCheckRequest(service=FLEET_SERVICE), timeout=TIMEOUT)
        assert alive.status == health_pb2.HealthCheckResponse.SERVING
        # The live session is still served...
        state = stub.GetSession(
            tcme_pb2.GetSessionRequest(session_id=session_id), timeout=TIMEOUT
        ).state
        assert state == tcme_pb2.SESSION_STATE_OPEN
        assert drainer.is_alive()  # ...and the drain waits for it
        stub.AbortSession(
            tcme_pb2.AbortSessionRequest(
                session_id=session_id,
                party="alice",
                signature=sign_abort_request(session_id, "alice", parties["alice"]),
            ),
            timeout=TIMEOUT,
        )
        # Every party collects its terminal error, which erases the session.
        for party in ("alice", "bob"):
            with pytest.raises(grpc.RpcError):
                stub.GetResult(
                    tcme_pb2.GetResultRequest(
                        session_id=session_id,
                        party=party,
                        signature=sign_result_request(session_id, party, parties[party]),
                    ),
                    timeout=TIMEOUT,
                )
    finally:
        drainer.join(timeout=TIMEOUT * 3)
    assert result == [0]


def test_drain_gives_up_after_grace_and_reports_what_was_left(served, parties):
    enclave, server, channel = served
    tcme_pb2_grpc.TcmeStub(channel).CreateSession(
        tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
    )
    assert drain(enclave, server.health_servicer, grace=0.2) == 1


def test_second_signal_interrupts_the_drain(served, parties):
    enclave, server, channel = served
    tcme_pb2_grpc.TcmeStub(channel).CreateSession(
        tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
    )
    interrupted = threading.Event()
    interrupted.set()
    assert drain(enclave, server.health_servicer, grace=600, interrupted=interrupted) == 1
