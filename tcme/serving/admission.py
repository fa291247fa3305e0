"""Per-peer admission for a ``grpc.aio`` server, with a reserved lane for cheap probes.

Every call (forwarded, health, reflection) is counted against its peer address
while it runs. Priority methods (health checks, Attest) count in a lane of
their own, so a peer that fills its ordinary lane with long waits still gets
its health and attestation answered. A call over its lane's limit is refused
at once with RESOURCE_EXHAUSTED (reason ``server.peer_busy``), holding nothing.
Ordinary calls are also paced per peer (``PeerPacer``): over the rate a call
waits its turn as a coroutine, or is refused when its turn would come after
its deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc

from tcme.serving.limits import PeerBusy, PeerLimiter, PeerPacer
from tcme.serving.status import error_status

log = logging.getLogger(__name__)

HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def busy_status(err: PeerBusy) -> grpc.Status:
    """The status a refused call gets."""
    return error_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "server.peer_busy",
        "server.peer_busy: too many calls in flight from this peer; retry later",
        error="PeerBusy",
        expected=f"at most {err.limit} calls in flight",
    )


class PeerAdmission(grpc.aio.ServerInterceptor):
    """Wraps every handler so its behaviour runs only inside its peer's lane."""

    def __init__(
        self,
        calls_per_peer: int,
        priority_methods: Iterable[str] = (),
        *,
        pacer: PeerPacer | None = None,
    ) -> None:
        self.ordinary = PeerLimiter(calls_per_peer)
        self.priority = PeerLimiter(calls_per_peer)
        self._pacer = pacer
        self._priority_methods = frozenset(priority_methods) | {HEALTH_CHECK}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler, wrapped to count the call against its peer."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler_call_details.method in self._priority_methods:
            return _wrap(handler, self.priority, None)
        return _wrap(handler, self.ordinary, self._pacer)


async def _pace(pacer: PeerPacer | None, context: grpc.aio.ServicerContext) -> None:
    """Wait for this peer's turn; refuse when the turn comes after the call's deadline."""
    if pacer is None:
        return
    peer = context.peer()
    wait = pacer.reserve(peer)
    if wait <= 0:
        return
    remaining = context.time_remaining()
    if remaining is not None and wait >= remaining:
        pacer.cancel(peer)
        await context.abort_with_status(
            error_status(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "server.peer_busy",
                "server.peer_busy: this peer is over its call rate; retry later",
                error="PeerBusy",
                expected=f"a turn within the deadline (next in {wait:.1f} s)",
            )
        )
    await asyncio.sleep(wait)


def _wrap(
    handler: grpc.RpcMethodHandler, limiter: PeerLimiter, pacer: PeerPacer | None
) -> grpc.RpcMethodHandler:
    if handler.response_streaming:
        producer = handler.stream_stream if handler.request_streaming else handler.unary_stream
        if not inspect.isasyncgenfunction(producer):
            raise TypeError(f"streaming handler {producer!r} must be an async generator")

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator:
            try:
                held = limiter.hold(context.peer())
                held.__enter__()
            except PeerBusy as err:
                await context.abort_with_status(busy_status(err))
                return
            try:
                await _pace(pacer, context)
                async for item in producer(request, context):
                    yield item
            finally:
                held.__exit__(None, None, None)

        make = (
            grpc.stream_stream_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return make(
            streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    behaviour = handler.stream_unary if handler.request_streaming else handler.unary_unary
    if not inspect.iscoroutinefunction(behaviour):
        raise TypeError(f"handler {behaviour!r} must be a coroutine function")

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            held = limiter.hold(context.peer())
            held.__enter__()
        except PeerBusy as err:
            await context.abort_with_status(busy_status(err))
            return None
        try:
            await _pace(pacer, context)
            return await behaviour(request, context)
        finally:
            held.__exit__(None, None, None)

    make = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
