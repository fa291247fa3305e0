"""grpc.health.v1 over a plain status table, for ``grpc.aio`` servers (proxy and enclave).

The statuses live in a thread-safe table that any thread may set (a prober, a
drain, shutdown); ``AsyncHealthServicer`` answers Check and Watch from it on
the serving loop, so health never waits for a worker thread and a Watch
stream costs a coroutine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
# Trailing metadata of a health answer that is not SERVING: why (`tcme host health` prints it).
REASON_KEY = "tcme-health-reason"
# Long enough for one enclave's whole connect error (gRPC's own text runs to ~250 chars,
# the OS reason last) per backend of a small fleet; far below gRPC's 8 KiB metadata limit.
MAX_REASON_CHARS = 1000
# How often a Watch stream looks for a change.
WATCH_POLL_SECONDS = 0.1


class HealthTable:
    """Service name -> serving status; frozen at NOT_SERVING once shutdown begins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, int] = {}
        self._shutting_down = False
        self._reason = "not probed yet"

    def set_reason(self, reason: str) -> None:
        """Why the proxy is not serving now (kept short; no party data ever reaches it)."""
        with self._lock:
            reason = " ".join(reason.split())
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[: MAX_REASON_CHARS - 3] + "..."  # visibly cut, never silently
            self._reason = reason

    def reason(self) -> str:
        """The last reason given for not serving."""
        with self._lock:
            return self._reason

    def set(self, service: str, status: int) -> None:
        """Record ``service``'s status (ignored after ``enter_graceful_shutdown``)."""
        with self._lock:
            if not self._shutting_down:
                self._status[service] = status

    def get(self, service: str) -> int | None:
        """The status, or None for a service never set."""
        with self._lock:
            return self._status.get(service)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good."""
        with self._lock:
            self._shutting_down = True
            for name in self._status:
                self._status[name] = NOT_SERVING


class AsyncHealthServicer(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health over a ``HealthTable``, for a grpc.aio server."""

    def __init__(self, table: HealthTable) -> None:
        self._table = table

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """The current status; NOT_FOUND for a service the proxy does not serve.

        An answer other than SERVING carries the reason in trailing metadata
        (``tcme-health-reason``: the health protocol has no field for it).
        """
        status = self._table.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "health.service: unknown service")
        if status != SERVING:
            context.set_trailing_metadata(((REASON_KEY, self._table.reason()),))
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change, until the caller or the server ends the stream."""
        last = None
        while True:
            status = self._table.get(request.service)
            status = SERVICE_UNKNOWN if status is None else status
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(WATCH_POLL_SECONDS)
