"""Byte-for-byte forwarding of the unary ``tcme.v1`` RPCs to the enclave (grpc.aio).

The proxy is untrusted and must stay that way: it never deserializes requests
(party inputs are HPKE ciphertext, but the proxy does not even look), it holds
no key, and it passes every enclave status code and its details back unchanged.
Only responses that have a registered hook (Attest, to attach cached
collateral) are decoded on the way back.

Forwarding is asynchronous: a call waiting on the enclave (a GetResult long
poll, a slow CreateSession) or on its own caller (a stream that sent headers
and nothing more) is a coroutine, not a worker thread, so no number of such
calls can stop the proxy from answering others. A party that cancels, or
whose deadline passes, cancels the enclave-side call with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from host.services import MethodShape

log = logging.getLogger(__name__)

# Some clients report "no deadline" as a huge time_remaining().
_NO_DEADLINE = 1e8

# Headers that belong to one HTTP/2 hop and must not be copied to the next.
_HOP_HEADERS = frozenset({"user-agent", "te", "content-type", "grpc-timeout"})
# Trailer the enclave uses for google.rpc.Status details: kept so rich errors pass through.
_STATUS_DETAILS = "grpc-status-details-bin"

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
    """Serves each known method path by replaying it on the enclave channel.

    ``channel`` is a ``grpc.aio.Channel`` on the serving loop. Every method of
    the API is unary; a streaming method is refused when the proxy is built.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        methods: Sequence[MethodShape],
        *,
        enclave_target: str,
        response_hooks: Mapping[str, ResponseHook] | None = None,
        max_call_seconds: float | None = None,
        on_unavailable: Callable[[], None] | None = None,
    ) -> None:
        streaming = [m.path for m in methods if m.client_streaming or m.server_streaming]
        if streaming:
            raise ValueError(f"the proxy forwards unary methods only; streaming: {streaming}")
        self._channel = channel
        self._target = enclave_target
        self._hooks = dict(response_hooks or {})
        self._max_call_seconds = max_call_seconds
        self._on_unavailable = on_unavailable
        self._handlers = {m.path: self._method_handler(m.path) for m in methods}
        unknown = set(self._hooks) - set(self._handlers)
        if unknown:
            raise ValueError(f"response hooks for unknown methods: {sorted(unknown)}")

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """The forwarding handler for a known path; None lets gRPC answer UNIMPLEMENTED."""
        return self._handlers.get(handler_call_details.method)

    # -- per-call plumbing -------------------------------------------------------------

    async def _timeout(self, context: grpc.aio.ServicerContext) -> float | None:
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
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired at the host proxy"
            )
        return remaining

    async def _fail(
        self, context: grpc.aio.ServicerContext, path: str, err: grpc.aio.AioRpcError
    ) -> None:
        code = err.code()
        details = err.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"enclave at {self._target} is unavailable: {details}"
            if self._on_unavailable is not None:
                self._on_unavailable()
        log.info("forward %s -> %s", path, code.name)
        kept = _forwardable(err.trailing_metadata(), trailing=True)
        if kept:
            context.set_trailing_metadata(tuple(kept))
        await context.abort(code, details)

    async def _apply_hook(
        self, context: grpc.aio.ServicerContext, path: str, response: bytes
    ) -> bytes:
        hook = self._hooks.get(path)
        if hook is None:
            return response
        try:
            # Hooks read the collateral cache from disk: off the serving loop.
            return await asyncio.to_thread(hook, response)
        except Exception as err:  # a hook bug must surface as a status, never a crash
            log.warning("response hook for %s failed: %s", path, type(err).__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"host proxy could not process {path}: {err}"
            )
            raise  # unreachable: abort raises

    def _method_handler(self, path: str) -> grpc.RpcMethodHandler:
        remote = self._channel.unary_unary(path)

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            timeout = await self._timeout(context)
            metadata = _forwardable(context.invocation_metadata(), trailing=False)
            # Cancelling this coroutine (the party went away) cancels the enclave call.
            call = remote(request, timeout=timeout, metadata=metadata)
            try:
                response = await call
            except grpc.aio.AioRpcError as err:
                await self._fail(context, path, err)
                raise
            kept = _forwardable(await call.trailing_metadata(), trailing=True)
            if kept:
                context.set_trailing_metadata(tuple(kept))
            return await self._apply_hook(context, path, response)

        return grpc.unary_unary_rpc_method_handler(forward)
