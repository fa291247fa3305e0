"""Which enclave a forwarded call goes to, decided from the request bytes alone.

Every ``tcme.v1`` request that belongs to a session carries ``session_id``
(a top-level ``bytes`` field, found through the descriptors, never a hand
list). Its first bytes are the route tag of the enclave that issued it
(``host.backends``), so the proxy reads just that one field, skipping every
other field unparsed (party inputs stay opaque ciphertext), and looks the
route up. Calls without a session (CreateSession, and Attest with an empty
session id) start something new and go to the least-loaded SERVING enclave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor

SESSION_FIELD = "session_id"
# Methods that create state on the enclave they reach; safe to retry elsewhere only
# when that enclave refused before creating anything (drain, or unreachable).
CREATING_METHODS = frozenset({"CreateSession"})


class MalformedRequest(ValueError):
    """The request bytes are not a valid protobuf message (at the fields we read)."""


@dataclass(frozen=True)
class Route:
    """Where one call goes: ``session_id`` empty means "a new one, to any enclave"."""

    session_id: bytes
    creates: bool

    @property
    def new(self) -> bool:
        """True when the call is not bound to an existing session."""
        return not self.session_id


def session_fields(services: Sequence[ServiceDescriptor]) -> dict[str, int | None]:
    """Method path -> field number of its request's ``session_id`` (None: no such field)."""
    out: dict[str, int | None] = {}
    for service in services:
        for method in service.methods:
            field = method.input_type.fields_by_name.get(SESSION_FIELD)
            number = (
                field.number
                if field is not None and field.type == FieldDescriptor.TYPE_BYTES
                else None
            )
            out[f"/{service.full_name}/{method.name}"] = number
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise MalformedRequest("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def read_bytes_field(data: bytes, number: int) -> bytes:
    """The value of top-level length-delimited field ``number`` (last one wins), or b"".

    Walks the wire format without decoding anything else; raises
    ``MalformedRequest`` on bytes that are not a well-formed message.
    """
    pos, found = 0, b""
    view = memoryview(data)
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise MalformedRequest("field number 0")
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise MalformedRequest("length-delimited field runs past the end")
            if field == number:
                found = bytes(view[pos : pos + size])
            pos += size
        else:
            raise MalformedRequest(f"unsupported wire type {wire}")
        if pos > len(data):
            raise MalformedRequest("field runs past the end")
    return found


def route_for(path: str, request: bytes, fields: dict[str, int | None]) -> Route:
    """The route of one call: its session id (b"" for a new session) and whether it creates."""
    creates = path.rsplit("/", 1)[-1] in CREATING_METHODS
    number = fields.get(path)
    if number is None:
        return Route(session_id=b"", creates=creates)
    return Route(session_id=read_bytes_field(request, number), creates=creates)
