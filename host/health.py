"""grpc.health.v1 for the proxy: SERVING only while the enclave answers.

A background thread probes the enclave every ``interval`` seconds. The enclave
may serve grpc.health.v1 itself (its per-service answer is mirrored) or not
(UNIMPLEMENTED still proves it is up). Anything else, and any forwarded call
that finds the enclave unreachable, marks every service NOT_SERVING until the
next good probe.

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

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Trailing metadata of a health answer that is not SERVING: why (`tcme host health` prints it).
REASON_KEY = "tcme-health-reason"
MAX_REASON_CHARS = 200
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

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


class EnclaveHealthMonitor:
    """Keeps a ``HealthTable`` in step with the enclave's reachability."""

    def __init__(
        self,
        channel: grpc.Channel,
        services: Sequence[str],
        *,
        interval: float = 1.0,
        probe_timeout: float = 1.0,
        target: str = "",
    ) -> None:
        self.table = HealthTable()
        self.servicer = AsyncHealthServicer(self.table)
        self._enclave = f"the enclave at {target}" if target else "the enclave"
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._services = list(services)
        self._interval = interval
        self._probe_timeout = probe_timeout
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="enclave-health", daemon=True)
        self._set_all(NOT_SERVING)

    def start(self) -> None:
        """Probe once now (so the first health answer is real), then in the background."""
        self.probe()
        self._thread.start()

    def stop(self) -> None:
        """Mark everything NOT_SERVING (graceful shutdown) and end the probe thread."""
        self._stop.set()
        self._wake.set()
        self.table.set_reason("the proxy is shutting down")
        self.table.enter_graceful_shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=self._probe_timeout + 1)

    def mark_unavailable(self) -> None:
        """A forwarded call could not reach the enclave: stop advertising SERVING now."""
        if not self._stop.is_set():
            self.table.set_reason(f"a forwarded call found {self._enclave} unavailable")
            self._set_all(NOT_SERVING)
            self._wake.set()

    def probe(self) -> bool:
        """Ask the enclave once; update every status; True when the enclave is up."""
        try:
            overall = self._check("")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                self.table.set_reason(
                    f"{self._enclave} does not answer its health check: "
                    f"{err.code().name}: {err.details() or 'no detail'}"
                )
                self._set_all(NOT_SERVING)
                return False
            self._set_all(SERVING)  # reachable, just no health service of its own
            return True
        if overall != SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(overall)
            self.table.set_reason(f"{self._enclave} reports {name}")
        self.table.set("", overall)
        for name in self._services:
            try:
                status = self._check(name)
            except grpc.RpcError:
                # The enclave knows no per-service status: it inherits the overall one.
                status = overall
            self.table.set(name, status)
        return overall == SERVING

    def _check(self, service: str) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return self._stub.Check(request, timeout=self._probe_timeout).status

    def _set_all(self, status: int) -> None:
        if self._stop.is_set():
            return
        self.table.set("", status)
        for name in self._services:
            self.table.set(name, status)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.probe()
            except Exception:  # the monitor must outlive a bad probe
                log.exception("enclave health probe failed")
                self.table.set_reason("the proxy's health probe failed (see its log)")
                self._set_all(NOT_SERVING)
