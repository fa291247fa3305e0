"""Provider selection: the first working interface wins and the message says why.

Device nodes are plain files and configfs is the ``fake_tsm`` kernel stand-in;
selection itself is the real code. Selection builds its configfs provider with
the real file operations, so the configfs cases here patch the default
``ConfigfsIo`` class to the stand-in.
"""

from __future__ import annotations

import hashlib

import pytest

from attestation.providers import configfs_tsm
from attestation.providers.configfs_tsm import ConfigfsTsmProvider
from attestation.providers.errors import ProviderUnavailable
from attestation.providers.select import diagnose, select_provider
from attestation.providers.sev_guest import SevGuestProvider
from attestation.snp.abi import parse_report


@pytest.fixture
def use_kernel(monkeypatch):
    """Make providers built by ``select`` use the given stand-in for file operations."""

    def install(kernel) -> None:
        monkeypatch.setattr(configfs_tsm, "ConfigfsIo", lambda: kernel)

    return install


def test_nothing_available_names_every_reason_fail(tmp_path):
    with pytest.raises(ProviderUnavailable) as info:
        select_provider(root=tmp_path)
    message = info.value.message()
    assert info.value.check == "provider.none"
    for name in ("configfs-tsm", "sev-guest", "tdx-guest", "--simulated"):
        assert name in message


def test_sev_guest_chosen_when_only_device(tmp_path, fake_sev_guest):
    provider, message = select_provider(root=tmp_path)
    assert isinstance(provider, SevGuestProvider)
    assert message.startswith("evidence provider: sev-guest (sev-snp)")
    assert "configfs-tsm:" in message and "does not exist" in message


def test_configfs_preferred_over_device(tmp_path, fake_sev_guest, fake_tsm, use_kernel):
    use_kernel(fake_tsm())
    provider, message = select_provider(root=tmp_path)
    assert isinstance(provider, ConfigfsTsmProvider) and provider.tee == "sev-snp"
    assert "sev-guest: also available, lower preference" in message
    report = parse_report(provider.get_evidence(hashlib.sha512(b"x").digest()).raw)
    assert report.report_data == hashlib.sha512(b"x").digest()


def test_tdx_device_alone_is_not_enough(tmp_path, tdx_guest_device):
    statuses = {s.name: s for s in diagnose(tmp_path)}
    assert not statuses["tdx-guest"].available
    assert "only gives a TDREPORT" in statuses["tdx-guest"].reason
    with pytest.raises(ProviderUnavailable, match="quotes need configfs-tsm"):
        select_provider(root=tmp_path)


def test_tdx_with_configfs(tmp_path, tdx_guest_device, fake_tsm, tdx_driver, use_kernel):
    use_kernel(fake_tsm("tdx_guest", tdx_driver))
    provider, message = select_provider(root=tmp_path)
    assert provider.tee == "tdx"
    assert "tsm provider is tdx_guest" in message.lower()


def test_configfs_without_driver_falls_to_device(tmp_path, fake_sev_guest, fake_tsm, use_kernel):
    use_kernel(fake_tsm(provider=None))
    provider, message = select_provider(root=tmp_path)
    assert isinstance(provider, SevGuestProvider)
    assert "no TSM driver is registered" in message


def test_simulated_only_when_asked(tmp_path):
    provider, message = select_provider(simulated=True, sim_dir=tmp_path / "sim")
    assert provider.simulated and provider.tee == "sev-snp"
    assert "simulated" in message and "SIMULATED" in message
    evidence = provider.get_evidence(bytes(range(64)))
    assert evidence.simulated
    # Without the flag the same machine has no provider: no silent fallback.
    with pytest.raises(ProviderUnavailable):
        select_provider(root=tmp_path)
