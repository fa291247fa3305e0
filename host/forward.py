"""Generic byte-for-byte forwarding of ``tcme.v1`` RPCs to the enclave.

The proxy is untrusted and must stay that way: it never deserializes requests
(party inputs are HPKE ciphertext, but the proxy does not even look), it holds
no key, and it passes every enclave status code and its details back unchanged.
Only responses that have a registered hook (Attest, to attach cached
collateral) are decoded on the way back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc

from host.services import MethodShape

log = logging.getLogger(__name__)

# grpc-python reports "no deadline" as a huge time_remaining().
_NO_DEADLINE = 1e8

# Headers that belong to one HTTP/2 hop and must not be copied to the next.
_HOP_HEADERS = frozenset({"user-agent", "te", "content-type", "grpc-timeout"})
# Trailer the enclave uses for google.rpc.Status details: kept so rich errors pass through.
_STATUS_DETAILS = "grpc-status-details-bin"

# Methods that block until the session finishes; only these need cancellation relayed.
WAITING_METHODS = frozenset({"GetResult"})

ResponseHook = Callable[[bytes], bytes]
Metadata = Sequence[tuple[str, str | bytes]]


def _forwardable(metadata: Iterable[tuple[str, Any]] | None, *, trailing: bool) -> list:
    kept = []
    for key, value in metadata or ():
        low = key.lower()
        if low == _STATUS_DETAILS and trailing:
            kept.append((key, value))
        elif low.startswith((":", "grpc-")) or low in _HOP_HEADERS:
            continue
        else:
            kept.append((key, value))
    return kept


class ForwardingHandler(grpc.GenericRpcHandler):
    """Serves each known method path by replaying it on the enclave channel."""

    def __init__(
        self,
        channel: grpc.Channel,
        methods: Sequence[MethodShape],
        *,
        enclave_target: str,
        response_hooks: Mapping[str, ResponseHook] | None = None,
        max_call_seconds: float | None = None,
        on_unavailable: Callable[[], None] | None = None,
    ) -> None:
        self._channel = channel
        self._target = enclave_target
        self._hooks = dict(response_hooks or {})
        self._max_call_seconds = max_call_seconds
        self._on_unavailable = on_unavailable
        self._handlers = {m.path: self._method_handler(m) for m in methods}
        unknown = set(self._hooks) - set(self._handlers)
        if unknown:
            raise ValueError(f"response hooks for unknown methods: {sorted(unknown)}")

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """The forwarding handler for a known path; None lets gRPC answer UNIMPLEMENTED."""
        return self._handlers.get(handler_call_details.method)

    # -- per-call plumbing -------------------------------------------------------------

    def _timeout(self, context: grpc.ServicerContext) -> float | None:
        remaining = context.time_remaining()
        if remaining is None or remaining > _NO_DEADLINE:
            remaining = None
        if self._max_call_seconds is not None:
            remaining = (
                self._max_call_seconds
                if remaining is None
                else min(remaining, self._max_call_seconds)
            )
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired at the host proxy")
        return remaining

    def _fail(self, context: grpc.ServicerContext, path: str, err: grpc.RpcError) -> None:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"enclave at {self._target} is unavailable: {details}"
            if self._on_unavailable is not None:
                self._on_unavailable()
        log.info("forward %s -> %s", path, code.name)
        kept = _forwardable(trailing, trailing=True)
        if kept:
            context.set_trailing_metadata(tuple(kept))
        context.abort(code, details or "")

    def _apply_hook(self, context: grpc.ServicerContext, path: str, response: bytes) -> bytes:
        hook = self._hooks.get(path)
        if hook is None:
            return response
        try:
            return hook(response)
        except Exception as err:  # a hook bug must surface as a status, never a crash
            log.warning("response hook for %s failed: %s", path, type(err).__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"host proxy could not process {path}: {err}")
            raise  # unreachable: abort raises

    def _method_handler(self, shape: MethodShape) -> grpc.RpcMethodHandler:
        path = shape.path
        if not shape.client_streaming and not shape.server_streaming:
            remote = self._channel.unary_unary(path)
            waits = path.rsplit("/", 1)[-1] in WAITING_METHODS

            def unary_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
                timeout = self._timeout(context)
                metadata = _forwardable(context.invocation_metadata(), trailing=False)
                try:
                    if waits:
                        # A call that waits on the session (GetResult): relay the
                        # party's cancellation so no enclave call outlives its caller.
                        call = remote.future(request, timeout=timeout, metadata=metadata)
                        context.add_callback(call.cancel)
                        response = call.result()
                    else:
                        # Short calls: a blocking call skips the future's thread
                        # hand-off (~0.4 ms a hop); the deadline still bounds it.
                        response, call = remote.with_call(
                            request, timeout=timeout, metadata=metadata
                        )
                except grpc.RpcError as err:
                    self._fail(context, path, err)
                    raise
                self._pass_trailers(context, call)
                return self._apply_hook(context, path, response)

            return grpc.unary_unary_rpc_method_handler(unary_unary)

        if not shape.client_streaming:
            remote_us = self._channel.unary_stream(path)

            def unary_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                call = remote_us(
                    request,
                    timeout=self._timeout(context),
                    metadata=_forwardable(context.invocation_metadata(), trailing=False),
                )
                yield from self._relay(context, path, call)

            return grpc.unary_stream_rpc_method_handler(unary_stream)

        if not shape.server_streaming:
            remote_su = self._channel.stream_unary(path)

            def stream_unary(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
                call = remote_su.future(
                    requests,
                    timeout=self._timeout(context),
                    metadata=_forwardable(context.invocation_metadata(), trailing=False),
                )
                context.add_callback(call.cancel)
                try:
                    response = call.result()
                except grpc.RpcError as err:
                    self._fail(context, path, err)
                    raise
                self._pass_trailers(context, call)
                return self._apply_hook(context, path, response)

            return grpc.stream_unary_rpc_method_handler(stream_unary)

        remote_ss = self._channel.stream_stream(path)

        def stream_stream(
            requests: Iterator[bytes], context: grpc.ServicerContext
        ) -> Iterator[bytes]:
            call = remote_ss(
                requests,
                timeout=self._timeout(context),
                metadata=_forwardable(context.invocation_metadata(), trailing=False),
            )
            yield from self._relay(context, path, call)

        return grpc.stream_stream_rpc_method_handler(stream_stream)

    def _relay(self, context: grpc.ServicerContext, path: str, call: Any) -> Iterator[bytes]:
        context.add_callback(call.cancel)
        try:
            for message in call:
                yield self._apply_hook(context, path, message)
        except grpc.RpcError as err:
            self._fail(context, path, err)
            raise
        self._pass_trailers(context, call)

    @staticmethod
    def _pass_trailers(context: grpc.ServicerContext, call: Any) -> None:
        kept = _forwardable(call.trailing_metadata(), trailing=True)
        if kept:
            context.set_trailing_metadata(tuple(kept))
