"""The real host proxy in front of three real enclaves (no model): routing as an attacker sees it.

Enclaves use the simulated SEV-SNP provider (the stand-in for hardware); no
session here gets its inputs, so no model runs. Everything goes over gRPC on
127.0.0.1 through ``host.server.create_server`` with several backends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import grpc
import pytest

from enclave.runtime import Enclave
from enclave.server import create_server as create_enclave_server
from enclave.server import shutdown
from host.server import create_server as create_proxy
from tcme.v1 import fleet_pb2, fleet_pb2_grpc, tcme_pb2, tcme_pb2_grpc
from tcme.wire import canonical_contract, error_info
from tests.contracts import millionaires_contract

TIMEOUT = 10


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "44" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract, values):
    raise AssertionError("the model must not run in this test")


@pytest.fixture
def fleet(sim_provider):
    enclaves, servers, targets = [], [], []
    for _ in range(3):
        enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run)
        server, port = create_enclave_server("127.0.0.1:0", enclave)
        server.start()
        enclaves.append(enclave)
        servers.append(server)
        targets.append(f"127.0.0.1:{port}")
    # Probed once at start, then (almost) never: the proxy must cope with a stale view.
    proxy, port = create_proxy("127.0.0.1:0", targets, health_interval=3600)
    proxy.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield enclaves, servers, tcme_pb2_grpc.TcmeStub(channel), channel
    channel.close()
    proxy.stop(0)
    for enclave, server in zip(enclaves, servers, strict=True):
        shutdown(server, enclave, grace=0)


@pytest.fixture
def contract(parties):
    return canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    )


def _create(stub, contract) -> bytes:
    request = tcme_pb2.CreateSessionRequest(contract=contract)
    return stub.CreateSession(request, timeout=TIMEOUT).session_id


def _holder(enclaves, session_id: bytes) -> int:
    return next(i for i, e in enumerate(enclaves) if session_id[:4] == e.route)


def test_sessions_spread_and_each_call_reaches_its_enclave(fleet, contract):
    enclaves, _, stub, _ = fleet
    ids = [_create(stub, contract) for _ in range(6)]
    spread = Counter(_holder(enclaves, i) for i in ids)
    assert sorted(spread.values()) == [2, 2, 2]  # least-loaded choice: even
    for session_id in ids:
        reply = stub.GetSession(tcme_pb2.GetSessionRequest(session_id=session_id), timeout=5)
        assert reply.contract == contract  # the holder answered: nobody else knows it


def test_forged_route_is_unavailable_fail(fleet, contract):
    # A route tag no enclave has: the proxy answers itself, naming the session as gone.
    _, _, stub, _ = fleet
    real = _create(stub, contract)
    forged = bytes(b ^ 0xFF for b in real[:4]) + real[4:]
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSession(tcme_pb2.GetSessionRequest(session_id=forged), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "is gone" in info.value.details()


def test_fleet_status_is_not_served_to_parties_fail(fleet):
    _, _, _, channel = fleet
    with pytest.raises(grpc.RpcError) as info:
        fleet_pb2_grpc.FleetStub(channel).Status(fleet_pb2.FleetStatusRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_request_is_refused_at_the_proxy_fail(fleet):
    _, _, _, channel = fleet
    call = channel.unary_unary("/tcme.v1.Tcme/GetSession")
    with pytest.raises(grpc.RpcError) as info:
        call(b"\x0a\x7f\x01", timeout=TIMEOUT)  # a length that runs past the end
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request.malformed" in info.value.details()


def test_draining_enclave_refusal_is_retried_elsewhere_before_any_probe(fleet, contract):
    enclaves, _, stub, _ = fleet
    enclaves[0].start_draining()  # the proxy has not probed since: it still thinks SERVING
    holders = [_holder(enclaves, _create(stub, contract)) for _ in range(6)]
    assert 0 not in holders  # each refusal (UNAVAILABLE enclave.draining) was retried


def test_dead_enclave_fails_its_sessions_others_live_on(fleet, contract):
    enclaves, servers, stub, _ = fleet
    ids = [_create(stub, contract) for _ in range(3)]
    victim = _holder(enclaves, ids[0])
    shutdown(servers[victim], enclaves[victim], grace=0)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSession(tcme_pb2.GetSessionRequest(session_id=ids[0]), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "is gone" in info.value.details()
    assert error_info(info.value) is None  # the proxy's own answer, not an enclave check
    for session_id in ids[1:]:
        reply = stub.GetSession(tcme_pb2.GetSessionRequest(session_id=session_id), timeout=5)
        assert reply.contract == contract
    # New sessions: the dead one was reported unreachable and probed at once.
    for _ in range(4):
        assert _holder(enclaves, _create(stub, contract)) != victim
