"""Fixtures for the TDX tests: the real quotes and collateral under ``vectors/tdx``.

Each valid vector comes with the collateral and time at which its README says it verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from attestation.tdx.abi import Quote, parse_quote
from attestation.tdx.collateral import TdxCollateral, collateral_for_quote
from attestation.tdx.verify import VerifiedQuote, VerifyOptions, verify_quote


def at(text: str) -> datetime:
    """An RFC 3339 time."""
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class TdxCase:
    """A quote, where its collateral is, and the time its source verified it at."""

    name: str
    quote: str  # relative to vectors/
    collateral: str  # file or folder relative to vectors/
    time: str

    def load(self, vector) -> tuple[Quote, TdxCollateral, datetime]:
        quote = parse_quote(vector(self.quote).read_bytes())
        return quote, collateral_for_quote(vector(self.collateral), quote), at(self.time)


# README section 2: the cases that verify fully, to UpToDate.
UPTODATE = (
    TdxCase(
        "dcapqvl_v4_uptodate",
        "tdx/dcapqvl_v4_uptodate/quote.bin",
        "tdx/dcapqvl_v4_uptodate/collateral.json",
        "2025-07-19T10:00:34Z",
    ),
    TdxCase(
        "tinfoil_v4_agpl",
        "tdx/tinfoil_v4_agpl/quote.bin",
        "tdx/tinfoil_v4_agpl/collateral",
        "2026-02-01T00:00:00Z",
    ),
    TdxCase(
        "gotdxguest_v5+tinfoil_collateral",
        "tdx/gotdxguest_v5/quote.bin",
        "tdx/tinfoil_v4_agpl/collateral",
        "2026-02-03T01:00:00Z",
    ),
)
NO_TCB_LEVEL = TdxCase(
    "dcapqvl_v5_no_tcb_level_match",
    "tdx/dcapqvl_v5_no_tcb_level_match/quote.bin",
    "tdx/dcapqvl_v5_no_tcb_level_match/collateral.json",
    "2026-03-20T10:41:14Z",
)
SPR = TdxCase(
    "gotdxguest_v4_spr",
    "tdx/gotdxguest_v4_spr/quote.bin",
    "tdx/gotdxguest_v4_spr",
    "2023-07-01T01:00:00Z",
)
ALL_QUOTES = (
    "tdx/dcapqvl_v4_uptodate/quote.bin",
    "tdx/dcapqvl_v5_no_tcb_level_match/quote.bin",
    "tdx/gotdxguest_v4_spr/quote.bin",
    "tdx/gotdxguest_v5/quote.bin",
    "tdx/tinfoil_v4_agpl/quote.bin",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``uptodate_case`` / ``quote_path`` parametrize a test over the matching vectors."""
    if "uptodate_case" in metafunc.fixturenames:
        metafunc.parametrize("uptodate_case", UPTODATE, ids=[c.name for c in UPTODATE])
    if "quote_path" in metafunc.fixturenames:
        metafunc.parametrize("quote_path", ALL_QUOTES, ids=[p.split("/")[1] for p in ALL_QUOTES])


@pytest.fixture
def tdx_case():
    """``tdx_case("tinfoil_v4_agpl")`` -> that TdxCase."""
    cases = {c.name: c for c in (*UPTODATE, NO_TCB_LEVEL, SPR)}
    return cases.__getitem__


@pytest.fixture
def no_tcb_level_case() -> TdxCase:
    """dcapqvl_v5_no_tcb_level_match: crypto valid, no TCB level matches."""
    return NO_TCB_LEVEL


@pytest.fixture
def spr_case() -> TdxCase:
    """gotdxguest_v4_spr with its PCS-format collateral (no TCB level matches as-is)."""
    return SPR


@pytest.fixture(scope="session")
def verified_v4(vector) -> VerifiedQuote:
    """dcapqvl_v4_uptodate, verified at its source's time (UpToDate)."""
    quote, collateral, now = UPTODATE[0].load(vector)
    return verify_quote(quote, VerifyOptions(collateral=collateral, now=now))


@pytest.fixture(scope="session")
def tdx_vectors(vectors: Path) -> Path:
    """vectors/tdx."""
    return vectors / "tdx"
