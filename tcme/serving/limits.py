"""Connection and call limits for a gRPC listener that strangers can reach.

``ListenerLimits`` turns into grpc core channel arguments (HTTP/2 streams per
connection, idle and maximum connection age, keepalive and ping-flood policy);
``PeerLimiter`` caps the calls one peer address has in flight at once. The
limits that decide whether a caller can hold the service are here, in one
place, with the reason for each default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ListenerLimits:
    """What one connection may hold, and for how long.

    - ``streams_per_connection``: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; one
      connection cannot open more calls than this at once.
    - ``calls_per_peer``: calls one peer address may have in flight (all of its
      connections together); more are refused with RESOURCE_EXHAUSTED.
    - ``connection_idle_seconds``: a connection with no call open is closed.
    - ``connection_age_seconds`` + ``connection_age_grace_seconds``: every
      connection is closed after this age (GOAWAY; clients reconnect on their
      own), and calls still open on it (a stream that sent only headers, say)
      are ended after the grace. This is the bound on header-only streams.
    - ``call_rate_per_peer`` / ``call_burst_per_peer``: how fast one peer
      address may start ordinary calls; a call over the rate waits its turn
      (a coroutine, no thread), so an attacker that re-sends every call the
      moment it ends runs at this rate, not at the speed of its CPU.
    - ``keepalive_seconds``: the server pings idle connections this often and
      drops peers that do not answer within ``keepalive_timeout_seconds``.
    """

    streams_per_connection: int = 32
    calls_per_peer: int = 64
    # Sustained calls per second one peer address may start (ordinary lane), and the
    # burst it may start at once; calls beyond wait their turn (they hold a coroutine).
    call_rate_per_peer: float = 50.0
    call_burst_per_peer: int = 100
    connection_idle_seconds: float = 120.0
    connection_age_seconds: float = 300.0
    # Long enough for the slowest honest call (a CreateSession running capability tests).
    connection_age_grace_seconds: float = 120.0
    keepalive_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.call_rate_per_peer <= 0:
            raise ValueError("call_rate_per_peer must be positive")
        for name in ("streams_per_connection", "calls_per_peer", "call_burst_per_peer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "connection_idle_seconds",
            "connection_age_seconds",
            "connection_age_grace_seconds",
            "keepalive_seconds",
            "keepalive_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def grpc_options(self) -> list[tuple[str, int]]:
        """grpc core server arguments enforcing the per-connection limits."""

        def ms(seconds: float) -> int:
            return max(1, int(seconds * 1000))

        return [
            ("grpc.max_concurrent_streams", self.streams_per_connection),
            ("grpc.max_connection_idle_ms", ms(self.connection_idle_seconds)),
            ("grpc.max_connection_age_ms", ms(self.connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", ms(self.connection_age_grace_seconds)),
            ("grpc.keepalive_time_ms", ms(self.keepalive_seconds)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_seconds)),
            # Clients may ping (keepalive) at most every 10 s, even with no call open;
            # a peer that pings faster twice is sent GOAWAY (a ping flood costs it the
            # connection, not us our CPU).
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 2),
        ]


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer string, without the client's port.

    ``ipv4:10.0.0.5:51234`` -> ``ipv4:10.0.0.5``; ``ipv6:[::1]:5`` -> ``ipv6:[::1]``;
    ``unix:...`` and anything unparsed are kept whole (one local peer).
    """
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


class PeerBusy(Exception):
    """A peer already has its maximum number of calls in flight."""

    def __init__(self, peer: str, limit: int) -> None:
        super().__init__(f"{peer} has {limit} calls in flight")
        self.peer = peer
        self.limit = limit


class PeerLimiter:
    """Counts calls in flight per peer address; thread-safe, usable from asyncio too."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def in_flight(self, peer: str) -> int:
        """Calls ``peer`` (a raw gRPC peer string or an address) has open now."""
        with self._lock:
            return self._counts.get(peer_address(peer), 0)

    @contextmanager
    def hold(self, peer: str) -> Iterator[None]:
        """Count one call for ``peer`` while the block runs; raises ``PeerBusy`` at the limit."""
        key = peer_address(peer)
        with self._lock:
            count = self._counts.get(key, 0)
            if count >= self.limit:
                raise PeerBusy(key, self.limit)
            self._counts[key] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts[key] - 1
                if left:
                    self._counts[key] = left
                else:
                    del self._counts[key]


class PeerPacer:
    """Paces the calls each peer address starts: ``rate`` per second after a ``burst``.

    A generic cell rate algorithm: ``reserve`` books the caller's turn and says
    how long to wait for it (0 within the burst). Thread-safe; the table drops
    peers whose bookings are all in the past.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._interval = 1.0 / rate
        self._tolerance = burst * self._interval
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def reserve(self, peer: str, now: float | None = None) -> float:
        """Book one call for ``peer``; seconds it must wait before it starts."""
        key = peer_address(peer)
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._next) > 4096:
                self._next = {k: t for k, t in self._next.items() if t > now}
            theoretical = max(self._next.get(key, now), now) + self._interval
            self._next[key] = theoretical
            return max(0.0, theoretical - self._tolerance - now)

    def cancel(self, peer: str) -> None:
        """Give back one booking that will not run (its caller was refused)."""
        key = peer_address(peer)
        with self._lock:
            if key in self._next:
                self._next[key] -= self._interval
