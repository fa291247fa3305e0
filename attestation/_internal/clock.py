"""The one time rule of every verifier: ``None`` is now, a naive time is UTC.

SEV-SNP and TDX verification (and every other kind) take their verification time
through ``verification_time``, so the same ``--at`` or ``at=`` means the same
instant for every TEE. A naive ``datetime`` is read as UTC, as RFC 3339 text
without an offset is by the CLI (``tcme evidence verify --at``).
"""

from __future__ import annotations

from datetime import UTC, datetime


def verification_time(at: datetime | None) -> datetime:
    """``at`` as a timezone-aware UTC instant (naive = UTC); the current time for None."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)
