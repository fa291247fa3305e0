"""/dev/tdx_guest provider: TDREPORT via ioctl, quotes via configfs-tsm.

``fake_tdx_guest`` stands in for the tdx-guest driver's ioctl and ``fake_tsm``
for configfs-tsm with the tdx_guest driver behind it (conftest).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib

import pytest

from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.tdx_guest import TDX_CMD_GET_REPORT0, TdxGuestProvider, TdxReportReq
from attestation.tdx.abi import parse_quote

REPORT_DATA = hashlib.sha512(b"tdx-guest test").digest()


def test_uapi_layout():
    assert ctypes.sizeof(TdxReportReq) == 64 + 1024
    assert TDX_CMD_GET_REPORT0 == 0xC4405401  # _IOWR('T', 1, struct tdx_report_req)


def test_tdreport_carries_report_data(tmp_path, fake_tdx_guest):
    provider = TdxGuestProvider(tmp_path, ioctl=fake_tdx_guest())
    tdreport = provider.get_tdreport(REPORT_DATA)
    assert len(tdreport) == 1024 and tdreport[128:192] == REPORT_DATA


def test_tdreport_tdcall_failure_fail(tmp_path, fake_tdx_guest):
    provider = TdxGuestProvider(tmp_path, ioctl=fake_tdx_guest(fail_errno=errno.EIO))
    with pytest.raises(ProviderError, match=r"TDCALL\[TDG.MR.REPORT\] failed"):
        provider.get_tdreport(REPORT_DATA)


def test_quote_comes_through_configfs(tmp_path, fake_tdx_guest, fake_tsm, tdx_driver):
    kernel = fake_tsm("tdx_guest", tdx_driver)
    provider = TdxGuestProvider(tmp_path, ioctl=fake_tdx_guest(), configfs_io=kernel)
    evidence = provider.get_evidence(REPORT_DATA)
    assert (evidence.tee, evidence.provider) == ("tdx", "tdx-guest")
    assert parse_quote(evidence.raw).body.report_data == REPORT_DATA
    assert kernel.reports_generated == 1


def test_without_configfs_quotes_are_unavailable_fail(tmp_path, fake_tdx_guest):
    provider = TdxGuestProvider(tmp_path, ioctl=fake_tdx_guest())
    with pytest.raises(ProviderUnavailable, match="quotes need configfs-tsm") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "tdx_guest.quote"


def test_configfs_served_by_sev_guest_is_refused_fail(tmp_path, fake_tdx_guest, fake_tsm):
    provider = TdxGuestProvider(tmp_path, ioctl=fake_tdx_guest(), configfs_io=fake_tsm())
    with pytest.raises(ProviderUnavailable, match="another TSM driver") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.actual == "sev_guest"


def test_missing_device_fail(tmp_path):
    with pytest.raises(ProviderUnavailable, match="not a TDX guest"):
        TdxGuestProvider(tmp_path).get_evidence(REPORT_DATA)
