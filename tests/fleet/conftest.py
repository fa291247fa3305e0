"""Fleet fixtures: the simulated SEV-SNP provider (the stand-in for hardware) and party keys."""

from __future__ import annotations

import pytest

from tcme.wire import PartyKeys


@pytest.fixture(scope="session")
def sim_provider(tmp_path_factory):
    from attestation.providers.simulated import SimulatedSnpProvider

    return SimulatedSnpProvider(tmp_path_factory.mktemp("sim-snp"))


@pytest.fixture(scope="session")
def parties():
    return {name: PartyKeys.generate() for name in ("alice", "bob")}
