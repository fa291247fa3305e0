"""gRPC failures as TcmeErrors, keeping the enclave's check name and values."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import grpc

from attestation.errors import TcmeError, UnreachableError

if TYPE_CHECKING:  # generated code, imported only when a failure carries details
    from tcme.v1 import tcme_pb2


class RemoteError(TcmeError):
    """The host proxy or the enclave answered a call with an error status.

    ``code`` is the gRPC status code; ``check`` is the enclave's failed check
    (from the google.rpc.ErrorInfo detail) or ``rpc.<code>`` when it sent none
    (e.g. the proxy could not reach the enclave).
    """

    def __init__(
        self,
        check: str,
        detail: str = "",
        *,
        code: grpc.StatusCode,
        expected: object = None,
        actual: object = None,
    ) -> None:
        self.code = code
        # A failed session's SessionFailure (tcme.v1), unverified: TcmeClient checks it.
        self.failure: tcme_pb2.SessionFailure | None = None
        # After tcme.client.client.disclosed_error: "sealed" (this party's own detail,
        # opened and found in the signed failure receipt) or "public" (the fixed reason).
        self.disclosure: str | None = None
        self.failure_reason: str | None = None
        super().__init__(check, detail, expected=expected, actual=actual)

    def message(self) -> str:
        """``check: detail (expected X, got Y) (gRPC CODE)``: the check first, as every error."""
        return f"{super().message()} (gRPC {self.code.name})"

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, what: str) -> RemoteError:
        """Build from a failed call; ``what`` names the RPC for errors without details."""
        from tcme.wire import error_info

        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        info = None
        try:
            info = error_info(err)
        except Exception:  # malformed details from an untrusted proxy: fall back to the text
            info = None
        busy = info is not None and info.get("reason", "") in BUSY_REASONS
        kind = (
            UnreachableRemoteError
            if code == grpc.StatusCode.UNAVAILABLE
            or (not info and code in UNREACHABLE_CODES)
            or busy
            else cls
        )
        if info:
            remote = kind(
                info.get("reason") or f"rpc.{code.name.lower()}",
                info.get("detail") or details or "",
                code=code,
                expected=info.get("expected") or None,
                actual=info.get("actual") or None,
            )
            remote.failure = _session_failure(err)
            return remote
        return kind(f"{what}.{code.name.lower()}", details or "", code=code)


class UnreachableRemoteError(RemoteError, UnreachableError):
    """The call never reached a service that answered it.

    The host is down or unreachable, TLS was used against a plaintext port (or
    the reverse), the proxy could not reach its enclave, or nothing answered
    before the deadline, or the service stayed busy (``BUSY_REASONS``) until it.
    Nothing was verified or rejected: the CLI exits 3.
    """


# Refusals made before any work (enclave.service.CallGate, the proxy's per-peer lanes):
# the same request can simply be sent again (the client retries them within its deadline).
BUSY_REASONS = frozenset({"server.busy", "server.peer_busy"})
# Statuses that come from the transport (or the proxy's link to its enclave), never
# from a check the enclave made: the enclave's own errors carry an ErrorInfo.
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _session_failure(err: grpc.RpcError) -> tcme_pb2.SessionFailure | None:
    """The ``tcme.v1.SessionFailure`` among the status details, or None (never raises)."""
    from grpc_status import rpc_status

    from tcme.v1 import tcme_pb2

    try:
        # A failed call's error is also its Call (code, details, trailing metadata); one
        # that is not makes from_call raise, which the except below reads as "absent".
        status = rpc_status.from_call(cast("grpc.Call", err))
        for detail in status.details if status is not None else ():
            failure = tcme_pb2.SessionFailure()
            if detail.Is(failure.DESCRIPTOR) and detail.Unpack(failure):
                return failure
    except Exception:  # malformed details from an untrusted proxy: as if absent
        return None
    return None
