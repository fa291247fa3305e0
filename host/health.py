"""grpc.health.v1 for the proxy: SERVING only while the enclave answers.

A background thread probes the enclave every ``interval`` seconds. The enclave
may serve grpc.health.v1 itself (its per-service answer is mirrored) or not
(UNIMPLEMENTED still proves it is up). Anything else, and any forwarded call
that finds the enclave unreachable, marks every service NOT_SERVING until the
next good probe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Trailing metadata of a health answer that is not SERVING: why (`tcme host health` prints it).
REASON_KEY = "tcme-health-reason"
MAX_REASON_CHARS = 200


class ExplainedHealthServicer(health.HealthServicer):
    """grpc.health.v1 whose answers other than SERVING carry the reason in trailing metadata.

    The health protocol has no field for it; a plain client ignores the metadata.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reason = "not probed yet"

    def set_reason(self, reason: str) -> None:
        """Why the proxy is not serving now (kept short; no party data ever reaches it)."""
        self._reason = " ".join(reason.split())[:MAX_REASON_CHARS]

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """The status, with ``tcme-health-reason`` when it is not SERVING."""
        response = super().Check(request, context)
        if response.status != SERVING and self._reason:
            context.set_trailing_metadata(((REASON_KEY, self._reason),))
        return response


class EnclaveHealthMonitor:
    """Keeps a ``HealthServicer`` in step with the enclave's reachability."""

    def __init__(
        self,
        channel: grpc.Channel,
        services: Sequence[str],
        *,
        interval: float = 1.0,
        probe_timeout: float = 1.0,
        target: str = "",
    ) -> None:
        self.servicer = ExplainedHealthServicer()
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
        self.servicer.set_reason("the proxy is shutting down")
        self.servicer.enter_graceful_shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=self._probe_timeout + 1)

    def mark_unavailable(self) -> None:
        """A forwarded call could not reach the enclave: stop advertising SERVING now."""
        if not self._stop.is_set():
            self.servicer.set_reason(f"a forwarded call found {self._enclave} unavailable")
            self._set_all(NOT_SERVING)
            self._wake.set()

    def probe(self) -> bool:
        """Ask the enclave once; update every status; True when the enclave is up."""
        try:
            overall = self._check("")
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                self.servicer.set_reason(
                    f"{self._enclave} does not answer its health check: "
                    f"{err.code().name}: {err.details() or 'no detail'}"
                )
                self._set_all(NOT_SERVING)
                return False
            self._set_all(SERVING)  # reachable, just no health service of its own
            return True
        if overall != SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(overall)
            self.servicer.set_reason(f"{self._enclave} reports {name}")
        self.servicer.set("", overall)
        for name in self._services:
            try:
                status = self._check(name)
            except grpc.RpcError:
                # The enclave knows no per-service status: it inherits the overall one.
                status = overall
            self.servicer.set(name, status)
        return overall == SERVING

    def _check(self, service: str) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return self._stub.Check(request, timeout=self._probe_timeout).status

    def _set_all(self, status: int) -> None:
        if self._stop.is_set():
            return
        self.servicer.set("", status)
        for name in self._services:
            self.servicer.set(name, status)

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
                self.servicer.set_reason("the proxy's health probe failed (see its log)")
                self._set_all(NOT_SERVING)
