"""Byte-for-byte forwarding of the unary ``tcme.v1`` RPCs to the enclave (grpc.aio).

The proxy is untrusted and must stay that way: it never deserializes requests
(party inputs are HPKE ciphertext, but the proxy does not even look), it holds
no key, and it passes every enclave status code and its details back unchanged.
Only responses that have a registered hook (Attest, to attach cached
collateral) are decoded on the way back.

Which enclave a call goes to is the router's answer (``host.router``): with
one backend, every call; with a fleet, the enclave named by the session id's
route tag, or the least-loaded one for a new session. The only bytes read
from a request are its session id.

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
from concurrent.futures import Executor
from typing import Any

import grpc

from host.backends import Backend, State
from host.route import MalformedRequest, Route
from host.router import NoBackend, Router
from host.services import MethodShape
from tcme.serving.status import error_status
from tcme.wire.requests import error_info

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
    """Serves each known method path by replaying it on the chosen enclave's channel.

    ``router`` picks the backend per call and owns the ``grpc.aio`` channels
    (on the serving loop). Every method of the API is unary; a streaming method
    is refused when the proxy is built. ``on_unavailable(target, detail)`` hears
    of each backend a call found unreachable. Response hooks run on ``executor``
    (the loop's default pool when None).
    """

    def __init__(
        self,
        router: Router,
        methods: Sequence[MethodShape],
        *,
        response_hooks: Mapping[str, ResponseHook] | None = None,
        max_call_seconds: float | None = None,
        on_unavailable: Callable[[str, str], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        streaming = [m.path for m in methods if m.client_streaming or m.server_streaming]
        if streaming:
            raise ValueError(f"the proxy forwards unary methods only; streaming: {streaming}")
        self._router = router
        self._hooks = dict(response_hooks or {})
        self._max_call_seconds = max_call_seconds
        self._on_unavailable = on_unavailable
        self._executor = executor
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
        remaining: float | None = context.time_remaining()
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
        self,
        context: grpc.aio.ServicerContext,
        path: str,
        err: grpc.aio.AioRpcError,
        backend: Backend,
        route: Route,
    ) -> None:
        code = err.code()
        details = err.details() or ""
        if code == grpc.StatusCode.CANCELLED and backend.state is State.GONE:
            # We cancelled it: the prober found the enclave gone while the call waited.
            code, details = grpc.StatusCode.UNAVAILABLE, self._router.gone_message(backend, route)
        elif code == grpc.StatusCode.UNAVAILABLE and error_info(err) is None:
            # The transport failed (no ErrorInfo: the enclave did not answer this call).
            if self._on_unavailable is not None:
                self._on_unavailable(backend.target, details)
            if self._router.fleet and not route.new:
                details = self._router.gone_message(backend, route)
            else:
                details = f"enclave at {backend.target} is unavailable: {details}"
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
            # Hooks read the collateral cache from disk: off the serving loop, on the
            # proxy's pool of threads for blocking work (``executor``).
            running = asyncio.get_running_loop()
            return await running.run_in_executor(self._executor, hook, response)
        except Exception as err:  # a hook bug must surface as a status, never a crash
            log.warning("response hook for %s failed: %s", path, type(err).__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"host proxy could not process {path}: {err}"
            )
            raise  # unreachable: abort raises

    def _method_handler(self, path: str) -> grpc.RpcMethodHandler:
        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            timeout = await self._timeout(context)
            metadata = _forwardable(context.invocation_metadata(), trailing=False)
            try:
                route = self._router.route(path, request)
            except MalformedRequest as err:
                # The same answer the enclave gives bad bytes: INVALID_ARGUMENT + ErrorInfo.
                await context.abort_with_status(
                    error_status(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "request.malformed",
                        f"request.malformed: {err}",
                        error="MalformedRequest",
                        actual=f"{len(request)} bytes",
                    )
                )
                raise  # unreachable: abort raises
            tried: list[str] = []
            while True:
                try:
                    backend = self._router.backend_for(route, tried)
                except NoBackend as err:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
                    raise  # unreachable: abort raises
                tried.append(backend.target)
                channel = self._router.channel(backend.target)
                remote: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
                # Cancelling this coroutine (the party went away) cancels the enclave call.
                call = remote(request, timeout=timeout, metadata=metadata)
                self._router.track(backend.target, call)
                try:
                    response = await call
                except asyncio.CancelledError:
                    if not self._router.cancelled_by_router(call):
                        raise  # the party went away
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, self._router.gone_message(backend, route)
                    )
                    raise  # unreachable: abort raises
                except grpc.aio.AioRpcError as err:
                    if self._router.retry_elsewhere(route, err) and self._router.has_other(tried):
                        log.info("forward %s: %s refused, trying another", path, backend.target)
                        continue
                    await self._fail(context, path, err, backend, route)
                    raise
                finally:
                    self._router.untrack(backend.target, call)
                break
            kept = _forwardable(await call.trailing_metadata(), trailing=True)
            if kept:
                context.set_trailing_metadata(tuple(kept))
            return await self._apply_hook(context, path, response)

        return grpc.unary_unary_rpc_method_handler(forward)
