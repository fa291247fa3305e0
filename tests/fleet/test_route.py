"""host.route: the session id read from request bytes, exactly as protobuf would read it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.route import MalformedRequest, read_bytes_field, route_for, session_fields
from tcme.v1 import tcme_pb2

TCME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"]
FIELDS = session_fields([TCME])


def test_every_session_method_is_found_from_the_descriptors():
    assert FIELDS["/tcme.v1.Tcme/CreateSession"] is None
    for name in ("GetSession", "Attest", "SubmitInput", "GetResult", "AbortSession"):
        assert FIELDS[f"/tcme.v1.Tcme/{name}"] == 1


@given(
    session_id=st.binary(max_size=64),
    party=st.text(max_size=20),
    enc=st.binary(max_size=300),
    ciphertext=st.binary(max_size=3000),
)
def test_reads_what_protobuf_reads(session_id, party, enc, ciphertext):
    request = tcme_pb2.SubmitInputRequest(
        session_id=session_id, party=party, enc=enc, ciphertext=ciphertext
    ).SerializeToString()
    route = route_for("/tcme.v1.Tcme/SubmitInput", request, FIELDS)
    assert route.session_id == tcme_pb2.SubmitInputRequest.FromString(request).session_id
    assert route.new is (session_id == b"") and not route.creates


def test_last_occurrence_wins_like_protobuf():
    first = tcme_pb2.GetSessionRequest(session_id=b"A" * 16).SerializeToString()
    second = tcme_pb2.GetSessionRequest(session_id=b"B" * 16).SerializeToString()
    joined = first + second  # protobuf merges: the later singular field wins
    assert tcme_pb2.GetSessionRequest.FromString(joined).session_id == b"B" * 16
    assert read_bytes_field(joined, 1) == b"B" * 16


def test_create_session_is_new_and_creates():
    request = tcme_pb2.CreateSessionRequest(contract=b"{}").SerializeToString()
    route = route_for("/tcme.v1.Tcme/CreateSession", request, FIELDS)
    assert route.new and route.creates


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x0a\x10abc",
        b"\x0a",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x00\x01",
        b"\x0f",
    ],
)
def test_malformed_bytes_are_refused_fail(garbage):
    with pytest.raises(MalformedRequest):
        read_bytes_field(garbage, 1)
