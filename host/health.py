"""grpc.health.v1 for the proxy: SERVING only while some enclave takes new sessions.

The backend pool (``host.backends``) probes every enclave in the background
(an enclave may serve grpc.health.v1 itself or not: UNIMPLEMENTED still proves
it is up); after each round ``FleetHealth.update`` sets the proxy's statuses.
A forwarded call that finds an enclave unreachable asks the pool to probe at
once.

The statuses live in a plain thread-safe table; ``AsyncHealthServicer``
answers Check and Watch from it on the proxy's asyncio loop, so health never
waits for a worker thread and a Watch stream costs a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from host.backends import BackendPool

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Trailing metadata of a health answer that is not SERVING: why (`tcme host health` prints it).
REASON_KEY = "tcme-health-reason"
MAX_REASON_CHARS = 200
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# Health name that stays SERVING while the proxy process runs (Kubernetes liveness).
LIVENESS_SERVICE = "tcme.v1.Fleet"
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
            self._reason = " ".join(reason.split())[:MAX_REASON_CHARS]

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


class FleetHealth:
    """Keeps a ``HealthTable`` in step with the backend pool (``host.backends``).

    Every forwarded service (and the overall "") is SERVING while at least one
    backend takes new sessions, NOT_SERVING otherwise, with the reason: each
    backend's state. ``tcme.v1.Fleet`` is SERVING while the proxy runs: a
    liveness check that must not fail just because every enclave is draining
    or restarting.
    """

    def __init__(self, pool: BackendPool, services: Sequence[str]) -> None:
        self.table = HealthTable()
        self.servicer = AsyncHealthServicer(self.table)
        self._pool = pool
        self._services = list(services)
        self._last: bool | None = None
        self._set_all(NOT_SERVING)
        self.table.set(LIVENESS_SERVICE, SERVING)

    def update(self) -> None:
        """Read the pool once and set every status (the pool calls this after each round)."""
        serving = self._pool.any_serving()
        if not serving:
            states = "; ".join(b.describe() for b in self._pool.backends()) or "no backend"
            self.table.set_reason(f"no enclave takes new sessions: {states}")
        if serving != self._last:
            log.info("proxy health: %s", "SERVING" if serving else "NOT_SERVING")
            self._last = serving
        self._set_all(SERVING if serving else NOT_SERVING)

    def stop(self) -> None:
        """Every service NOT_SERVING, for good (graceful shutdown)."""
        self.table.set_reason("the proxy is shutting down")
        self.table.enter_graceful_shutdown()

    def _set_all(self, status: int) -> None:
        self.table.set("", status)
        for name in self._services:
            self.table.set(name, status)
