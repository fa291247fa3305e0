"""A byte-counting progress bar for long hashing work.

It draws on stderr only when stderr is a terminal and the caller did not ask
for quiet, so pipes, logs and CI output stay clean. Several hashing threads
advance one bar; drawing is throttled so the bar costs nothing measurable.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_REDRAW_SECONDS = 0.1
_BAR_WIDTH = 28


class Progress:
    """Counts bytes done out of ``total`` and redraws a one-line bar."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = max(total, 0)
        self._stream = stream
        self._done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_draw = 0.0

    @classmethod
    def for_terminal(cls, label: str, total: int, *, quiet: bool) -> Progress:
        """A bar on stderr when it is a TTY and not ``quiet``; otherwise a silent counter."""
        stream = sys.stderr
        visible = not quiet and stream is not None and stream.isatty()
        return cls(label, total, stream=stream if visible else None)

    @property
    def done(self) -> int:
        """Bytes reported so far."""
        return self._done

    def advance(self, nbytes: int) -> None:
        """Record ``nbytes`` more; safe to call from several threads."""
        with self._lock:
            self._done += nbytes
            if self._stream is None:
                return
            now = time.monotonic()
            if now - self._last_draw >= _REDRAW_SECONDS:
                self._last_draw = now
                self._draw(now)

    def finish(self) -> None:
        """Draw the final state and end the line (no-op when silent)."""
        with self._lock:
            if self._stream is None:
                return
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        assert self._stream is not None
        fraction = min(self._done / self._total, 1.0) if self._total else 1.0
        filled = int(fraction * _BAR_WIDTH)
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed / 1e6
        line = (
            f"\r{self._label} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
            f"{fraction * 100:5.1f}% {_human(self._done)}/{_human(self._total)} {rate:7.1f} MB/s"
        )
        self._stream.write(line)
        self._stream.flush()


def _human(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - unreachable
