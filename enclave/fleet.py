"""One enclave as a member of a fleet: its route tag, load, and drain on SIGTERM.

A fleet is several enclave processes (replicas of one measured image and one
signed model) behind stateless host proxies. Each enclave picks a random route
tag at start and begins every session id with it (``enclave.runtime``); a proxy
learns each backend's tag from ``tcme.v1.Fleet/Status`` and sends every later
call of a session to the enclave whose tag starts the session id. Membership
and restarts are Kubernetes' job; this module only answers for one process.

Drain (``drain``): on SIGTERM the enclave reports NOT_SERVING, refuses
CreateSession with UNAVAILABLE (reason ``enclave.draining``), keeps serving the
calls of its live sessions until none is left or the grace period ends, and
only then stops. Sessions still open after the grace period are dropped, with
nothing of them kept, exactly as when the process dies.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc
from grpc_health.v1 import health_pb2

from enclave.runtime import Enclave
from tcme.serving.health import HealthTable
from tcme.v1 import fleet_pb2, fleet_pb2_grpc, tcme_pb2

log = logging.getLogger(__name__)

TCME_SERVICE = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name
FLEET_SERVICE = fleet_pb2.DESCRIPTOR.services_by_name["Fleet"].full_name
# How often a drain looks at the live-session count.
DRAIN_POLL_SECONDS = 0.1


class FleetServicer(fleet_pb2_grpc.FleetServicer):
    """``tcme.v1.Fleet``: route tag, live sessions and drain state of one enclave."""

    def __init__(self, enclave: Enclave) -> None:
        self._enclave = enclave

    def Status(
        self, request: fleet_pb2.FleetStatusRequest, context: grpc.ServicerContext
    ) -> fleet_pb2.FleetStatusResponse:
        """What a proxy needs to route to this enclave."""
        return fleet_pb2.FleetStatusResponse(
            route=self._enclave.route,
            live_sessions=self._enclave.sessions.live_count(),
            max_sessions=self._enclave.sessions.max_sessions,
            draining=self._enclave.draining,
        )


def drain(
    enclave: Enclave,
    health_servicer: HealthTable | None,
    grace: float,
    *,
    interrupted: threading.Event | None = None,
) -> int:
    """Stop taking sessions and wait up to ``grace`` seconds for the live ones to end.

    ``health_servicer`` (the server's ``tcme.serving.health.HealthTable``) is switched
    to NOT_SERVING for the whole server and ``tcme.v1.Tcme``, so health-checking
    proxies and Kubernetes stop sending new sessions here; the Tcme service keeps
    answering the calls of sessions already open. Returns how many sessions were
    still live when the wait ended (0 when all finished). ``interrupted`` (a second
    signal) ends the wait early.
    """
    enclave.start_draining()
    if health_servicer is not None:
        health_servicer.set_reason("draining: finishing its sessions, taking no new ones")
        for name in ("", TCME_SERVICE):
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    live = len(enclave.sessions)
    log.info("draining: no new sessions; waiting up to %.0f s for %d live sessions", grace, live)
    deadline = time.monotonic() + max(grace, 0.0)
    stop = interrupted or threading.Event()
    while live and time.monotonic() < deadline and not stop.is_set():
        stop.wait(min(DRAIN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        live = len(enclave.sessions)
    if live:
        log.warning("drain ended with %d sessions still live; they are dropped", live)
    else:
        log.info("drained: every session finished")
    return live
