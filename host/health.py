"""grpc.health.v1 for the proxy: SERVING only while some enclave takes new sessions.

The backend pool (``host.backends``) probes every enclave in the background
(an enclave may serve grpc.health.v1 itself or not: UNIMPLEMENTED still proves
it is up); after each round ``FleetHealth.update`` sets the proxy's statuses.
A forwarded call that finds an enclave unreachable asks the pool to probe at
once.

The statuses live in a ``tcme.serving.health.HealthTable``, answered by its
``AsyncHealthServicer`` on the proxy's asyncio loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from host.backends import BackendPool
from tcme.serving.health import (
    NOT_SERVING,
    SERVING,
    AsyncHealthServicer,
    HealthTable,
)

log = logging.getLogger(__name__)


# Health name that stays SERVING while the proxy process runs (Kubernetes liveness).
LIVENESS_SERVICE = "tcme.v1.Fleet"


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
