"""The enclaves one proxy forwards to: discovery, health, load, and routes.

A proxy is given backends as fixed targets (``--enclave``, repeatable) and/or
DNS names that resolve to many addresses (``--enclave-dns NAME:PORT``, e.g. a
Kubernetes headless Service), re-resolved every ``resolve_interval`` seconds.
A prober thread asks every backend, every ``interval`` seconds:

* ``tcme.v1.Fleet/Status``: its route tag (the first bytes of every session id
  it issues), live sessions, capacity, and whether it is draining;
* ``grpc.health.v1.Health/Check("")``: whether it takes new sessions.

``choose`` picks the backend for a new session: reachable, SERVING, not
draining, with the fewest live sessions (its last report plus the sessions
this proxy created on it since). ``by_route`` finds the backend that holds a
session from the session id alone, so any proxy replica routes any session
with no state shared between replicas. Nothing here is trusted by a party: a
wrong route makes a call fail (the session id is bound into REPORT_DATA).

With exactly one fixed backend (one ``--enclave``, no DNS name) the proxy is
a plain pass-through, as before fleets: every call goes to that backend and the
enclave alone decides (``single``). A backend that does not serve
``tcme.v1.Fleet`` is probed by health alone and has no route, so it can only
be used that way.

A backend that misses a probe gets no new sessions; one that misses
``GONE_AFTER_FAILURES`` in a row (a failed forwarded call asks for the next
probe at once) is "gone", and the ``on_gone`` callback lets the forwarder fail
the calls it has in flight there at once, so a party never waits out its
deadline on a dead or unreachable host. A DNS address that disappears is kept
while it still answers and still holds sessions (a draining pod), then
dropped. Every change of state is
logged once.
"""

from __future__ import annotations

import enum
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tcme.v1 import fleet_pb2, fleet_pb2_grpc

log = logging.getLogger(__name__)

ROUTE_SIZE = 4  # enclave.runtime.ROUTE_SIZE; the host never imports enclave
DEFAULT_INTERVAL = 1.0
DEFAULT_RESOLVE_INTERVAL = 5.0
DEFAULT_PROBE_TIMEOUT = 2.0
# Consecutive failed probes before a backend is gone (its calls in flight are failed).
GONE_AFTER_FAILURES = 3
# gRPC's own reconnect backoff grows to 120 s: an enclave restarted after a long outage
# stayed "gone" (and its calls UNAVAILABLE) for up to two minutes after it was back (15 s
# after one minute down). Every channel to an enclave caps it near the probe interval.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

Resolver = Callable[[str, int], list[str]]


class State(enum.Enum):
    """What the proxy believes about one backend."""

    UNKNOWN = "unknown"  # not probed yet
    SERVING = "serving"  # takes new sessions
    NOT_SERVING = "not-serving"  # answers, but takes no new sessions (health says so)
    DRAINING = "draining"  # shutting down: finishes its sessions, takes no new ones
    GONE = "gone"  # does not answer


def resolve_dns(name: str, port: int) -> list[str]:
    """Every address ``name`` resolves to, as gRPC targets ``ip:port`` (sorted)."""
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    targets = set()
    for family, _, _, _, address in infos:
        host = address[0]
        targets.add(f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}")
    return sorted(targets)


def split_dns_target(value: str) -> tuple[str, int]:
    """``NAME:PORT`` -> (name, port); ValueError with a clear message otherwise."""
    name, sep, port = value.rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected NAME:PORT, got {value!r}")
    return name, int(port)


@dataclass
class Backend:
    """One enclave target and the last things it told us."""

    target: str
    static: bool  # given with --enclave (never dropped), or found through DNS
    state: State = State.UNKNOWN
    route: bytes = b""
    live_sessions: int = 0
    max_sessions: int = 0
    # Sessions this proxy created here since the last Status (others' show up there).
    created_since_status: int = 0
    in_dns: bool = True
    failures: int = 0
    detail: str = ""
    probe_channel: grpc.Channel | None = field(default=None, repr=False, compare=False)

    @property
    def load(self) -> int:
        """Live sessions as far as this proxy can tell."""
        return self.live_sessions + self.created_since_status

    def describe(self) -> str:
        """One line for logs and errors."""
        route = self.route.hex() if self.route else "not learned yet"
        if self.state is State.GONE or self.failures:
            return f"{self.target} (route {route}) does not answer: {self.detail or 'no detail'}"
        return f"{self.target} (route {route}, {self.state.value}, {self.load} live)"


class BackendPool:
    """The backends of one proxy; thread-safe. ``start`` begins probing."""

    def __init__(
        self,
        targets: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        *,
        interval: float = DEFAULT_INTERVAL,
        resolve_interval: float = DEFAULT_RESOLVE_INTERVAL,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        resolver: Resolver = resolve_dns,
        on_gone: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not targets and not dns_names:
            raise ValueError("at least one --enclave or --enclave-dns is needed")
        self._dns = [split_dns_target(name) for name in dns_names]
        self._interval = interval
        self._resolve_interval = resolve_interval
        self._probe_timeout = probe_timeout
        self._resolver = resolver
        self._on_gone = on_gone
        self._on_change = on_change
        self._lock = threading.RLock()
        self._backends: dict[str, Backend] = {}
        for target in dict.fromkeys(targets):
            self._backends[target] = Backend(target=target, static=True)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcme-backends", daemon=True)
        self._next_resolve = 0.0
        self._rr = 0

    # -- the forwarder's questions -------------------------------------------------------

    def on_gone(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(target)`` (from the prober thread) when a backend stops answering."""
        self._on_gone = callback

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every probe round."""
        self._on_change = callback

    def describe(self) -> str:
        """The configured backends, for the start-up log line."""
        parts = [b.target for b in self._backends.values() if b.static]
        parts += [f"dns:{name}:{port}" for name, port in self._dns]
        return ", ".join(parts)

    @property
    def single(self) -> bool:
        """True for one fixed backend and no DNS name: every call goes to it."""
        return not self._dns and len(self._backends) == 1

    def only(self) -> Backend:
        """The one backend of a ``single`` pool."""
        with self._lock:
            (backend,) = self._backends.values()
            return backend

    def choose(self, exclude: Iterable[str] = ()) -> Backend | None:
        """The backend for a new session (fewest live sessions), or None when none takes one.

        The chosen backend's count goes up by one at once, so a burst of
        CreateSession calls spreads before the next Status arrives.
        """
        skip = set(exclude)
        with self._lock:
            if self.single:
                only = self.only()
                return None if only.target in skip else only
            routes = self._route_counts()
            ready = [
                b
                for b in self._backends.values()
                if b.state is State.SERVING
                and b.route
                and routes[b.route] == 1
                and b.target not in skip
                and (not b.max_sessions or b.load < b.max_sessions)
            ]
            if not ready:
                return None
            least = min(b.load for b in ready)
            tied = [b for b in ready if b.load == least]
            self._rr += 1
            chosen = tied[self._rr % len(tied)]
            chosen.created_since_status += 1
            return chosen

    def by_route(self, session_id: bytes) -> Backend | None:
        """The backend whose route tag starts ``session_id`` (None when none is known)."""
        if self.single:
            return self.only()
        route = bytes(session_id[:ROUTE_SIZE])
        if len(route) < ROUTE_SIZE:
            return None
        with self._lock:
            found = [b for b in self._backends.values() if b.route == route]
            return found[0] if len(found) == 1 else None

    def backends(self) -> list[Backend]:
        """A snapshot of every backend (copies; for health, logs and tests)."""
        with self._lock:
            return [
                Backend(**{k: v for k, v in vars(b).items() if k != "probe_channel"})
                for b in self._backends.values()
            ]

    def any_serving(self) -> bool:
        """True when some backend takes new sessions."""
        with self._lock:
            single = self.single
            return any(
                b.state is State.SERVING and (b.route or single) for b in self._backends.values()
            )

    def report_unreachable(self, target: str, detail: str) -> None:
        """A forwarded call found ``target`` unreachable: probe it now."""
        with self._lock:
            backend = self._backends.get(target)
            if backend is not None and backend.state is not State.GONE:
                backend.detail = detail
        self._wake.set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Resolve and probe once now (so the first answers are real), then in the background."""
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        """End probing and close the probe channels."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._probe_timeout * 2 + 1)
        with self._lock:
            for backend in self._backends.values():
                if backend.probe_channel is not None:
                    backend.probe_channel.close()
                    backend.probe_channel = None

    def refresh(self) -> None:
        """One round: re-resolve DNS names when due, then probe every backend."""
        now = time.monotonic()
        if self._dns and now >= self._next_resolve:
            self._resolve()
            self._next_resolve = now + self._resolve_interval
        with self._lock:
            backends = list(self._backends.values())
        if backends:
            with futures.ThreadPoolExecutor(
                max_workers=min(16, len(backends)), thread_name_prefix="tcme-probe"
            ) as pool:
                results = list(pool.map(self._probe, backends))
            for backend, result in zip(backends, results, strict=True):
                self._apply(backend, *result)
        self._drop_retired()
        if self._on_change is not None:
            self._on_change()

    # -- internals -----------------------------------------------------------------------

    def _route_counts(self) -> dict[bytes, int]:
        counts: dict[bytes, int] = {}
        for b in self._backends.values():
            if b.route and b.state is not State.GONE:
                counts[b.route] = counts.get(b.route, 0) + 1
        return counts

    def _resolve(self) -> None:
        found: set[str] = set()
        for name, port in self._dns:
            try:
                found.update(self._resolver(name, port))
            except OSError as err:
                # A failed lookup keeps what we have: DNS trouble must not drop sessions.
                log.warning("enclave DNS %s:%d did not resolve: %s", name, port, err)
                return
        with self._lock:
            for target in sorted(found):
                backend = self._backends.get(target)
                if backend is None:
                    self._backends[target] = Backend(target=target, static=False)
                    log.info("backend %s: found in DNS", target)
                elif not backend.in_dns:
                    backend.in_dns = True
                    log.info("backend %s: back in DNS", target)
            for backend in self._backends.values():
                if not backend.static and backend.in_dns and backend.target not in found:
                    backend.in_dns = False
                    log.info("backend %s: no longer in DNS; kept while it holds sessions",
                             backend.target)  # fmt: skip

    def _probe(self, backend: Backend) -> tuple[State, fleet_pb2.FleetStatusResponse | None, str]:
        channel = backend.probe_channel
        if channel is None:
            channel = backend.probe_channel = grpc.insecure_channel(
                backend.target, options=RECONNECT_OPTIONS
            )
        status: fleet_pb2.FleetStatusResponse | None = None
        try:
            status = fleet_pb2_grpc.FleetStub(channel).Status(
                fleet_pb2.FleetStatusRequest(), timeout=self._probe_timeout
            )
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                return State.GONE, None, f"{err.code().name}: {err.details()}"
            # Up, but no fleet service: health alone decides (a pass-through backend).
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self._probe_timeout
            )
            serving = health.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                return State.GONE, None, f"health: {err.code().name}: {err.details()}"
            serving = True  # reachable, just no health service of its own
        if status is not None and status.draining:
            return State.DRAINING, status, ""
        return (State.SERVING if serving else State.NOT_SERVING), status, ""

    def _apply(
        self, backend: Backend, state: State, status: fleet_pb2.FleetStatusResponse | None, why: str
    ) -> None:
        gone = False
        with self._lock:
            if self._backends.get(backend.target) is not backend:
                return  # dropped meanwhile
            before = backend.state
            if status is not None:
                if backend.route and status.route != backend.route:
                    # A new process at the same address: the old one's sessions are gone.
                    log.warning(
                        "backend %s: route changed %s -> %s (the enclave restarted; "
                        "its sessions are gone)",
                        backend.target,
                        backend.route.hex(),
                        status.route.hex(),
                    )
                    gone = True
                backend.route = bytes(status.route)
                backend.live_sessions = status.live_sessions
                backend.max_sessions = status.max_sessions
                backend.created_since_status = 0
                backend.failures = 0
                backend.detail = ""
            elif state is State.GONE:
                backend.failures += 1
                backend.detail = why
                if backend.failures < GONE_AFTER_FAILURES and before not in (
                    State.UNKNOWN,
                    State.GONE,
                ):
                    # One slow or failed probe (a loaded host) only stops new sessions;
                    # calls in flight are failed once the enclave misses several in a row.
                    # A backend already gone (or never seen) stays gone: no phantom flap.
                    state = State.NOT_SERVING
                    why = f"{why} (probe {backend.failures} of {GONE_AFTER_FAILURES} failed)"
            else:
                backend.failures = 0
                backend.detail = ""
            backend.state = state
            if state is State.GONE and before is not State.GONE:
                gone = True
            if before is not state:
                log.info(
                    "backend %s: %s -> %s%s",
                    backend.target,
                    before.value,
                    state.value,
                    f" ({why})" if why else f" (route {backend.route.hex()})",
                )
            duplicate = backend.route and self._route_counts().get(backend.route, 0) > 1
        if duplicate:
            log.error(
                "backends share route %s: no new sessions go to either until one restarts",
                backend.route.hex(),
            )
        if gone and self._on_gone is not None:
            self._on_gone(backend.target)

    def _drop_retired(self) -> None:
        with self._lock:
            for target, backend in list(self._backends.items()):
                if backend.static or backend.in_dns:
                    continue
                if backend.state is State.GONE or backend.live_sessions == 0:
                    del self._backends[target]
                    if backend.probe_channel is not None:
                        backend.probe_channel.close()
                    log.info("backend %s: dropped (left DNS, no sessions left)", target)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception:  # the prober must outlive a bad round
                log.exception("backend probe round failed")
