"""configfs-tsm provider against a fake configfs tree.

``fake_tsm`` (conftest) stands in for the kernel: configfs cannot be mounted in
a test, and a plain directory cannot react to writes, so the file operations
go through an object that behaves like drivers/virt/coco/tsm.c (generation
counter, EBUSY, ENXIO, EINVAL) with the simulated SNP signer or a real TD quote
behind it.
"""

from __future__ import annotations

import errno
import hashlib

import pytest

from attestation.providers.base import EvidenceProvider
from attestation.providers.configfs_tsm import TSM_REPORT_PATH, ConfigfsTsmProvider
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.snp import _x509
from attestation.snp.abi import parse_report

REPORT_DATA = hashlib.sha512(b"tcme provider test").digest()


def test_snp_report_and_certs_from_configfs(tmp_path, fake_tsm, sim):
    kernel = fake_tsm()
    provider = ConfigfsTsmProvider(tmp_path, io=kernel)
    assert isinstance(provider, EvidenceProvider)
    assert (provider.tee, provider.tsm_provider) == ("sev-snp", "sev_guest")
    assert not provider.simulated

    evidence = provider.get_evidence(REPORT_DATA)

    report = parse_report(evidence.raw)
    assert report.report_data == REPORT_DATA
    assert report.chip_id == sim.chip_id
    assert (evidence.tee, evidence.provider) == ("sev-snp", "configfs-tsm")
    assert not evidence.simulated
    # auxblob's GHCB table became PEM in VEK, ASK, ARK order: the simulated chain itself.
    assert _x509.split_certificates(evidence.certs) == _x509.split_certificates(sim.certs_pem())
    # Every instance was removed again (probe + request).
    assert len(kernel.created) == 2
    assert list((tmp_path / TSM_REPORT_PATH).iterdir()) == []


def test_privlevel_is_written_and_reaches_the_report(tmp_path, fake_tsm):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm(), privlevel=2)
    assert parse_report(provider.get_evidence(REPORT_DATA).raw).vmpl == 2


def test_privlevel_below_floor_is_refused_by_kernel_fail(tmp_path, fake_tsm):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm(privlevel_floor=1), privlevel=0)
    with pytest.raises(ProviderError, match="write privlevel") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "configfs_tsm.privlevel"


def test_tdx_quote_from_configfs(tmp_path, fake_tsm, tdx_driver):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm("tdx_guest", tdx_driver))
    assert provider.tee == "tdx"
    evidence = provider.get_evidence(REPORT_DATA)
    assert evidence.tee == "tdx" and evidence.certs == b""
    from attestation.tdx.abi import parse_quote

    assert parse_quote(evidence.raw).body.report_data == REPORT_DATA


def test_raced_generation_is_retried(tmp_path, fake_tsm):
    kernel = fake_tsm(races=2)
    provider = ConfigfsTsmProvider(tmp_path, io=kernel)
    evidence = provider.get_evidence(REPORT_DATA)
    assert parse_report(evidence.raw).report_data == REPORT_DATA
    assert len(kernel.created) == 1 + 3  # probe, two raced attempts, one clean


def test_busy_generation_counter_every_time_fails(tmp_path, fake_tsm):
    kernel = fake_tsm(races=10)
    provider = ConfigfsTsmProvider(tmp_path, io=kernel, attempts=3)
    with pytest.raises(ProviderError, match="busy generation counter") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "configfs_tsm.generation"
    # Our instance saw inblob written twice (ours + the racer's): expected 1, got 2.
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert list((tmp_path / TSM_REPORT_PATH).iterdir()) == []


def test_ebusy_on_write_is_retried_then_reported(tmp_path, fake_tsm):
    kernel = fake_tsm(busy_writes=1)
    provider = ConfigfsTsmProvider(tmp_path, io=kernel)
    assert parse_report(provider.get_evidence(REPORT_DATA).raw).report_data == REPORT_DATA

    kernel.busy_writes = 5
    with pytest.raises(ProviderError, match="busy generation counter") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.actual == "EBUSY"


def test_missing_provider_is_unavailable_fail(tmp_path, fake_tsm):
    with pytest.raises(ProviderUnavailable, match="no TSM driver is registered") as info:
        ConfigfsTsmProvider(tmp_path, io=fake_tsm(provider=None))
    assert info.value.check == "configfs_tsm.provider"


def test_unknown_provider_is_unavailable_fail(tmp_path, fake_tsm):
    with pytest.raises(ProviderUnavailable, match="arm_cca_guest"):
        ConfigfsTsmProvider(tmp_path, io=fake_tsm(provider="arm_cca_guest"))


def test_no_configfs_mount_is_unavailable_fail(tmp_path):
    with pytest.raises(ProviderUnavailable, match="does not exist") as info:
        ConfigfsTsmProvider(tmp_path)
    assert info.value.check == "configfs_tsm.mount"


def test_permission_denied_is_unavailable_fail(tmp_path):
    class Denied:
        def mkdir(self, path):
            raise PermissionError(errno.EACCES, "Permission denied")

    (tmp_path / TSM_REPORT_PATH).mkdir(parents=True)
    with pytest.raises(ProviderUnavailable, match="run as root"):
        ConfigfsTsmProvider(tmp_path, io=Denied())


def test_short_read_of_outblob_fails(tmp_path, fake_tsm):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm(truncate_to=1000))
    with pytest.raises(ProviderError, match="shorter") as info:
        provider.get_evidence(REPORT_DATA)
    assert (info.value.check, info.value.expected, info.value.actual) == (
        "configfs_tsm.short_read",
        1184,
        1000,
    )


def test_short_tdx_quote_fails(tmp_path, fake_tsm, tdx_driver):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm("tdx_guest", tdx_driver, truncate_to=600))
    with pytest.raises(ProviderError, match="shorter"):
        provider.get_evidence(REPORT_DATA)


def test_driver_failure_is_named_fail(tmp_path, fake_tsm):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm(report_errno=errno.EIO))
    with pytest.raises(ProviderError, match="firmware or host error") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "configfs_tsm.outblob"
    assert list((tmp_path / TSM_REPORT_PATH).iterdir()) == []


def test_report_with_other_report_data_is_refused_fail(tmp_path, fake_tsm, sim):
    # A driver that ignores inblob (or a racer the generation counter missed).
    kernel = fake_tsm(driver=lambda inblob, level: (sim.report(bytes(64)), b""))
    provider = ConfigfsTsmProvider(tmp_path, io=kernel)
    with pytest.raises(ProviderError, match="REPORT_DATA we asked for") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.actual == bytes(64)


def test_empty_auxblob_means_no_certs(tmp_path, fake_tsm, sim):
    kernel = fake_tsm(driver=lambda inblob, level: (sim.report(inblob), b""))
    evidence = ConfigfsTsmProvider(tmp_path, io=kernel).get_evidence(REPORT_DATA)
    assert evidence.certs == b""


def test_report_data_must_be_64_bytes_fail(tmp_path, fake_tsm):
    provider = ConfigfsTsmProvider(tmp_path, io=fake_tsm())
    with pytest.raises(ProviderError, match="exactly 64 bytes"):
        provider.get_evidence(b"short")


def test_privlevel_out_of_range_fail(tmp_path, fake_tsm):
    with pytest.raises(ProviderError, match="out of range"):
        ConfigfsTsmProvider(tmp_path, io=fake_tsm(), privlevel=4)
