"""The enclave's listener under a hostile proxy or a stranger: bad bytes, huge ids, floods.

Each test is the attack, over real gRPC sockets against the real servicer
(simulated SEV-SNP provider standing in for the hardware; no model needed):
bytes that are not protobuf, attacker-sized session ids and party names,
GetResult with no deadline, and 40 validly signed GetResult calls on the
attacker's own session. The positive side: Attest keeps answering, and a
cancelled wait gives its slot back.
"""

from __future__ import annotations

import os
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import enclave.service as service
from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import canonical_contract, error_info, sign_result_request
from tests.contracts import millionaires_contract

TCME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"]
TIMEOUT = 10
FLOOD = 40


def _never_run(contract, values):
    raise AssertionError("the model must not run in this test")


class _Identity:
    root_digest = "22" * 32
    signer = "no model loaded"
    issuer = None
    method = "key"
    hash_algorithm = "sha256"


@pytest.fixture
def served(sim_provider):
    enclave = Enclave(
        provider=sim_provider, model=_Identity(), runner=_never_run, retention_seconds=30
    )
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    server.target = f"127.0.0.1:{port}"
    yield server, channel, tcme_pb2_grpc.TcmeStub(channel)
    channel.close()
    shutdown(server, enclave, grace=0)


def _status_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status detail"
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return info


def _assert_clean(err: grpc.RpcError, reason: str) -> None:
    """INVALID_ARGUMENT, short message, one ErrorInfo with no empty or None values."""
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert len(err.details()) < 300
    info = _status_info(err)
    assert info.domain == "tcme.dev" and info.reason == reason
    for key, value in info.metadata.items():
        assert value and value != "None", key
        assert len(value) <= 240


def test_bytes_that_are_not_protobuf_invalid_argument_every_method(served):
    _, channel, _ = served
    garbage = b"\xff" * 7  # field 31, wire type 7: no protobuf parser accepts it
    for method in TCME.methods:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(f"/{TCME.full_name}/{method.name}")(garbage, timeout=TIMEOUT)
        _assert_clean(info.value, "request.malformed")
        assert method.input_type.full_name in info.value.details()


def test_garbage_to_the_fleet_service_invalid_argument(served):
    _, channel, _ = served
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/tcme.v1.Fleet/Status")(b"\xff" * 7, timeout=TIMEOUT)
    _assert_clean(info.value, "request.malformed")


def test_attacker_sized_session_id_not_echoed(served):
    _, _, stub = served
    huge = b"A" * 200_000
    calls = {
        "GetSession": lambda: stub.GetSession(
            tcme_pb2.GetSessionRequest(session_id=huge), timeout=TIMEOUT
        ),
        "Attest": lambda: stub.Attest(
            tcme_pb2.AttestRequest(session_id=huge, nonce=os.urandom(32)), timeout=TIMEOUT
        ),
        "SubmitInput": lambda: stub.SubmitInput(
            tcme_pb2.SubmitInputRequest(session_id=huge, party="alice"), timeout=TIMEOUT
        ),
        "GetResult": lambda: stub.GetResult(
            tcme_pb2.GetResultRequest(session_id=huge, party="alice"), timeout=TIMEOUT
        ),
        "AbortSession": lambda: stub.AbortSession(
            tcme_pb2.AbortSessionRequest(session_id=huge, party="alice"), timeout=TIMEOUT
        ),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        _assert_clean(info.value, "request.session_id")
        trailers = b"".join(
            v if isinstance(v, bytes) else v.encode() for _, v in info.value.trailing_metadata()
        )
        assert b"AAAA" not in trailers and "4141" not in info.value.details(), name
        assert error_info(info.value)["actual"] == "200000 bytes"


def test_attacker_sized_party_name_not_echoed(served):
    _, _, stub = served
    party = "p" * 100_000
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitInput(
            tcme_pb2.SubmitInputRequest(session_id=os.urandom(16), party=party), timeout=TIMEOUT
        )
    _assert_clean(info.value, "request.party")
    assert "ppppp" not in info.value.details()


def test_error_metadata_never_empty_or_none(served):
    _, _, stub = served
    # Unknown session: the error has no "expected"; it must be left out, not "" or "None".
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSession(tcme_pb2.GetSessionRequest(session_id=os.urandom(16)), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    metadata = _status_info(info.value).metadata
    assert "expected" not in metadata
    assert all(v and v != "None" for v in metadata.values())


def _own_session(stub, parties):
    contract = canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    )
    sid = stub.CreateSession(
        tcme_pb2.CreateSessionRequest(contract=contract), timeout=TIMEOUT
    ).session_id
    request = tcme_pb2.GetResultRequest(
        session_id=sid, party="alice", signature=sign_result_request(sid, "alice", parties["alice"])
    )
    return sid, request


def test_get_result_without_deadline_answers_pending_not_unknown(served, parties, monkeypatch):
    monkeypatch.setattr(service, "MAX_RESULT_WAIT", 0.3)
    _, _, stub = served
    _, request = _own_session(stub, parties)
    response = stub.GetResult(request)  # no deadline at all (was UNKNOWN: OverflowError)
    assert response.state == tcme_pb2.SESSION_STATE_OPEN
    assert response.retry_after_ms > 0
    assert not response.outputs and not response.receipt


def test_get_result_flood_leaves_attest_served_and_cancel_frees_slots(served, parties):
    server, _, stub = served
    gate = server.tcme_servicer.gate
    _, request = _own_session(stub, parties)
    # 40 validly signed long polls on the attacker's own session, with no deadline.
    flood = [stub.GetResult.future(request) for _ in range(FLOOD)]
    deadline = time.monotonic() + TIMEOUT
    while gate.waiting < gate.wait_limit and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gate.waiting == gate.wait_limit  # only a few wait; no worker per waiter
    # The rest are answered "pending" without waiting (well inside the 10 s wait bound)
    # instead of each holding a worker.
    deadline = time.monotonic() + service.MAX_RESULT_WAIT / 2
    while sum(f.done() for f in flood) < FLOOD - gate.wait_limit:
        assert time.monotonic() < deadline, "calls without a wait slot did not answer at once"
        time.sleep(0.02)
    answered = [f for f in flood if f.done()]
    assert all(f.result().state == tcme_pb2.SESSION_STATE_OPEN for f in answered)
    # Attest still answers, many times over.
    for _ in range(20):
        response = stub.Attest(tcme_pb2.AttestRequest(nonce=os.urandom(32)), timeout=TIMEOUT)
        assert response.evidence.report
    # Cancelling frees the waits at once (well before their 10 s bound).
    for future in flood:
        future.cancel()
    deadline = time.monotonic() + 5
    while gate.waiting and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gate.waiting == 0


def test_long_calls_beyond_the_gate_refused_busy_attest_reserved(sim_provider, parties):
    """With every long-call slot taken, one more is RESOURCE_EXHAUSTED; Attest still runs."""
    gate = service.CallGate(workers=32)
    assert gate.long_limit + gate.wait_limit + service.RESERVED_WORKERS == 32
    held = [gate.long_call() for _ in range(gate.long_limit)]
    for slot in held:
        slot.__enter__()
    with pytest.raises(service.ServerBusy) as info:
        gate.long_call().__enter__()
    for slot in held:
        slot.__exit__(None, None, None)
    assert service.status_code_for(info.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.check == "server.busy"
    with gate.long_call():  # slots come back
        assert gate.running == 1


def test_header_only_streams_at_the_enclave_hold_no_worker(served):
    """A stranger that reaches the enclave's own port: 48 silent streams, more than its threads."""
    server, _, stub = served
    release = threading.Event()

    def silent():
        release.wait(60)
        return
        yield

    channels = [
        grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(3)
    ]
    calls = [
        channels[i % 3].stream_unary(f"/{TCME.full_name}/GetResult").future(silent())
        for i in range(48)
    ]
    try:
        time.sleep(0.3)
        assert not any(call.done() for call in calls)
        for _ in range(10):
            response = stub.Attest(tcme_pb2.AttestRequest(nonce=os.urandom(32)), timeout=TIMEOUT)
            assert response.evidence.report
    finally:
        for call in calls:
            call.cancel()
        release.set()
        for channel in channels:
            channel.close()


def test_one_peer_over_its_limit_at_the_enclave_refused_attest_still_served(
    sim_provider, parties, monkeypatch
):
    import enclave.server as enclave_server

    monkeypatch.setattr(enclave_server, "ENCLAVE_CALLS_PER_PEER", 2)
    enclave = Enclave(
        provider=sim_provider, model=_Identity(), runner=_never_run, retention_seconds=30
    )
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tcme_pb2_grpc.TcmeStub(channel)
            _, request = _own_session(stub, parties)
            waits = [stub.GetResult.future(request, timeout=30) for _ in range(2)]
            gate = server.tcme_servicer.gate
            deadline = time.monotonic() + TIMEOUT
            while gate.waiting < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            with pytest.raises(grpc.RpcError) as info:
                stub.GetResult(request, timeout=TIMEOUT)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_info(info.value)["reason"] == "server.peer_busy"
            # Attest counts in its own lane.
            attested = stub.Attest(tcme_pb2.AttestRequest(nonce=os.urandom(32)), timeout=TIMEOUT)
            assert attested.evidence.report
            for wait in waits:
                wait.cancel()
    finally:
        shutdown(server, enclave, grace=0)


def test_enclave_serves_reflection_v1(served):
    from grpc_reflection.v1alpha import reflection_pb2

    _, channel, _ = served
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (listed,) = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for s in listed.list_services_response.service}
    assert {TCME.full_name, "tcme.v1.Fleet", "grpc.health.v1.Health"} <= names
