"""The real host proxy in front of the real enclave service: statuses, limits, garbage, health."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tcme.client import RemoteError, TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import error_info

TCME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name


def test_health_serving_for_tcme_service(attest_stack):
    with grpc.insecure_channel(attest_stack.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", TCME):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING


def test_enclave_error_details_pass_through_unchanged_fail(attest_stack):
    # Same call straight to the enclave and through the proxy: identical status and details.
    request = tcme_pb2.GetSessionRequest(session_id=b"\x01" * 16).SerializeToString()
    seen = []
    for target in (attest_stack.enclave_target, attest_stack.target):
        with grpc.insecure_channel(target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(f"/{TCME}/GetSession")(request, timeout=5)
            seen.append((info.value.code(), info.value.details(), error_info(info.value)))
    assert seen[0] == seen[1]
    assert seen[1][0] == grpc.StatusCode.NOT_FOUND
    assert seen[1][2]["reason"] == "session.not_found"


def test_client_error_names_enclave_check_fail(attest_stack):
    with TcmeClient(attest_stack.target) as client, pytest.raises(RemoteError) as info:
        client.get_session(b"\x02" * 16)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.check == "session.not_found"


@pytest.mark.parametrize(
    "method",
    ["CreateSession", "GetSession", "Attest", "SubmitInput", "GetResult", "AbortSession"],
)
def test_garbage_protobuf_bytes_clear_error_no_crash_fail(attest_stack, method):
    garbage = b"\xff\xff\xff\xff\x0f\x08garbage"
    with (
        grpc.insecure_channel(attest_stack.target) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(f"/{TCME}/{method}")(garbage, timeout=5)
    # INVALID_ARGUMENT with its ErrorInfo, through the proxy (never grpc's INTERNAL
    # "Exception deserializing request!").
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(info.value)["reason"] == "request.malformed"
    assert "garbage" not in info.value.details()
    # Both servers are still up and answering.
    with TcmeClient(attest_stack.target) as client, pytest.raises(RemoteError) as after:
        client.get_session(b"\x03" * 16)
    assert after.value.code == grpc.StatusCode.NOT_FOUND


def test_empty_contract_is_named_empty_not_a_json_parser_message_fail(attest_stack):
    # A client that sends no contract gets told so, not Python's "Expecting value: line 1
    # column 1 (char 0)"; the metadata holds no empty or None field.
    empty = tcme_pb2.CreateSessionRequest().SerializeToString()
    with (
        grpc.insecure_channel(attest_stack.target) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(f"/{TCME}/CreateSession")(empty, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "contract.json: empty: no JSON document (expected a JSON document, got empty)"
    )
    info_fields = error_info(info.value)
    assert info_fields is not None and info_fields["reason"] == "contract.json"
    assert "Expecting value" not in info.value.details() + str(info_fields)
    assert all(value and value != "None" for value in info_fields.values())


def test_oversized_contract_resource_exhausted_fail(attest_stack):
    huge = tcme_pb2.CreateSessionRequest(contract=b"{" * (5 * 1024 * 1024)).SerializeToString()
    with (
        grpc.insecure_channel(
            attest_stack.target, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
        ) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(f"/{TCME}/CreateSession")(huge, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()


def test_attest_response_gets_collateral_from_evidence(attest_stack):
    request = tcme_pb2.AttestRequest(nonce=b"n" * 32)
    with TcmeClient(attest_stack.target) as client:
        response = client._stub.Attest(request, timeout=5)
    assert response.collateral.snp_cert_chain_pem == response.evidence.certs_pem != b""
    assert response.collateral.source == "evidence"
