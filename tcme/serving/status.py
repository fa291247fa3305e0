"""Rich gRPC error statuses: ``google.rpc.Status`` with one tcme ``ErrorInfo``, bounded.

Every error either listener sends carries an ``ErrorInfo`` (domain
``tcme.dev``, reason = the failed check). Metadata holds only non-empty values
(never ``"None"``), and every string is cut to a fixed size, so no request can
make an error echo an unbounded amount of its own input back (or grow the
trailer until gRPC refuses it).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tcme.wire.requests import ERROR_DOMAIN

# Longest message / metadata value an error carries; longer text is cut with an ellipsis.
MAX_TEXT = 240
METADATA_KEYS = ("error", "detail", "expected", "actual")


def bounded(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` as a string of at most ``limit`` characters ("" for None)."""
    if text is None:
        return ""
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def error_status(
    code: grpc.StatusCode, reason: str, message: str, **metadata: object
) -> grpc.Status:
    """A ``grpc.Status`` for ``abort_with_status``: code, short message, one ErrorInfo.

    ``metadata`` keys are among ``error``, ``detail``, ``expected``, ``actual``;
    empty, ``None`` and ``"None"`` values are left out.
    """
    unknown = set(metadata) - set(METADATA_KEYS)
    if unknown:
        raise ValueError(f"unknown ErrorInfo metadata keys: {sorted(unknown)}")
    kept = {}
    for key, value in metadata.items():
        text = bounded(value)
        if text and text != "None":
            kept[key] = text
    info = error_details_pb2.ErrorInfo(
        domain=ERROR_DOMAIN, reason=bounded(reason, 64) or "error", metadata=kept
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=bounded(message), details=[detail]
    )
    return rpc_status.to_status(status)
