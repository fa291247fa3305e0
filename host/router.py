"""Send each forwarded call to its enclave: the proxy's side of a fleet (grpc.aio).

``Router`` joins the backend pool (``host.backends``: who is up, routes, load)
to the forwarder. For each call it reads the route from the request bytes
(``host.route``) and answers with the backend and a ``grpc.aio`` channel to it:

* a call of an existing session goes to the backend whose route tag starts the
  session id. None known, or known to be gone: ``UNAVAILABLE``, saying that the
  enclave holding the session is gone (sessions never move: nothing of a
  session survives its enclave);
* a new session (CreateSession, Attest without a session) goes to the
  least-loaded SERVING backend; when that one refuses before creating anything
  (draining, or unreachable) the forwarder asks ``next`` for another;
* calls in flight on a backend the prober finds gone are cancelled at once
  (``on_gone``), so no party waits out its deadline on a dead enclave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc

from host.backends import Backend, BackendPool, State
from host.route import Route, route_for
from tcme.wire.requests import error_info

log = logging.getLogger(__name__)

DRAINING_REASON = "enclave.draining"


class NoBackend(Exception):
    """No enclave can take this call; ``str()`` is the message for the party."""


class Router:
    """Per-call backend choice, channels to every backend, and in-flight call tracking."""

    def __init__(
        self,
        pool: BackendPool,
        session_fields: dict[str, int | None],
        *,
        channel_options: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.pool = pool
        self._fields = session_fields
        self._options = list(channel_options)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._inflight: dict[str, set[grpc.aio.Call]] = {}
        self._cancelled: set[grpc.aio.Call] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The serving loop: channels live on it, cancellations are sent to it."""
        self._loop = loop

    # -- routing -------------------------------------------------------------------------

    def route(self, path: str, request: bytes) -> Route:
        """The call's route; raises ``host.route.MalformedRequest`` for bad bytes."""
        return route_for(path, request, self._fields)

    def backend_for(self, route: Route, tried: Sequence[str] = ()) -> Backend:
        """The backend for ``route``; raises ``NoBackend`` with the party's message."""
        if route.new or self.pool.single:
            chosen = self.pool.choose(exclude=tried)
            if chosen is None:
                states = ", ".join(b.describe() for b in self.pool.backends()) or "none"
                raise NoBackend(f"no enclave takes new sessions now (backends: {states})")
            return chosen
        backend = self.pool.by_route(route.session_id)
        if backend is None:
            raise NoBackend(
                f"the enclave holding session {route.session_id.hex()[:16]} is gone "
                f"(no backend of this proxy has route {route.session_id[:4].hex()}); "
                "its session is lost: start a new session"
            )
        if backend.state is State.GONE and not self.pool.single:
            raise NoBackend(self.gone_message(backend, route))
        return backend

    @property
    def fleet(self) -> bool:
        """True when routes decide (several backends, or DNS); False for a pass-through."""
        return not self.pool.single

    @staticmethod
    def gone_message(backend: Backend, route: Route) -> str:
        """What a party hears when its session's enclave stopped answering."""
        what = f"session {route.session_id.hex()[:16]}" if not route.new else "the call"
        return (
            f"the enclave holding {what} is gone ({backend.target}, route "
            f"{backend.route.hex()}: {backend.detail or 'not answering'}); nothing of a "
            "session survives its enclave: start a new session"
        )

    def has_other(self, tried: Sequence[str]) -> bool:
        """True when some backend not in ``tried`` could take a new session."""
        return any(b.target not in tried and b.state is State.SERVING for b in self.pool.backends())

    @staticmethod
    def retry_elsewhere(route: Route, err: grpc.aio.AioRpcError) -> bool:
        """True when a new-session call failed before the enclave created anything."""
        if not route.new or err.code() != grpc.StatusCode.UNAVAILABLE:
            return False
        info = error_info(err)
        # Draining enclaves refuse with a reason; no ErrorInfo means the transport failed.
        return info is None or info.get("reason") == DRAINING_REASON

    # -- channels and in-flight calls ----------------------------------------------------

    def channel(self, target: str) -> grpc.aio.Channel:
        """The ``grpc.aio`` channel to ``target`` (made on first use, on the serving loop)."""
        channel = self._channels.get(target)
        if channel is None:
            channel = grpc.aio.insecure_channel(target, options=self._options)
            self._channels[target] = channel
        return channel

    def track(self, target: str, call: grpc.aio.Call) -> None:
        """Remember ``call`` until ``untrack``; cancelled if ``target`` is found gone."""
        self._inflight.setdefault(target, set()).add(call)

    def untrack(self, target: str, call: grpc.aio.Call) -> None:
        """Forget a finished call."""
        calls = self._inflight.get(target)
        if calls is not None:
            calls.discard(call)
        self._cancelled.discard(call)

    def cancelled_by_router(self, call: grpc.aio.Call) -> bool:
        """True when ``call`` was cancelled because its backend was found gone."""
        return call in self._cancelled

    def on_gone(self, target: str) -> None:
        """The prober found ``target`` gone (any thread): cancel its calls in flight."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._cancel_all, target)

    def _cancel_all(self, target: str) -> None:
        calls = list(self._inflight.get(target, ()))
        if calls:
            log.info("backend %s gone: failing %d calls in flight", target, len(calls))
        for call in calls:
            self._cancelled.add(call)
            call.cancel()

    async def close(self) -> None:
        """Close every channel (on the serving loop)."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
