"""One background asyncio loop per process, and a blocking facade for grpc.aio servers.

The host proxy serves with ``grpc.aio`` so that a waiting call (a long poll, a
stream that sent only headers) costs a coroutine, not a worker thread. The
rest of tcme (CLI, tests, the enclave) is synchronous, so the aio server runs
on a daemon thread's event loop and ``AioServer`` offers the same blocking
``start`` / ``stop`` / ``wait_for_termination`` as a ``grpc.Server``. grpc.aio
objects belong to the loop they were created on: create them through ``run``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's serving loop, started on first use (a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="tcme-aio", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the serving loop and wait for its result (from any other thread)."""
    loop = background_loop()
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


class AioServer:
    """A ``grpc.aio.Server`` driven from synchronous code."""

    def __init__(
        self, server: grpc.aio.Server, *, on_stop: Callable[[], object] | None = None
    ) -> None:
        self.server = server
        self._on_stop = on_stop

    def start(self) -> None:
        """Start serving (returns once the listener accepts calls)."""
        run(self.server.start())

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop accepting calls, let open calls run ``grace`` seconds, then close them."""
        run(self.server.stop(grace))
        if self._on_stop is not None:
            self._on_stop()
        done = threading.Event()
        done.set()
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True when it stopped."""
        return run(self.server.wait_for_termination(timeout))
