"""/dev/sev-guest provider: ioctl structs, the certificate-length dance, error mapping.

A test cannot open a real SEV guest device, so ``fake_sev_guest`` (conftest)
stands in for the kernel driver: it reads the request through the pointers in
``struct snp_guest_request_ioctl`` and writes the response back, as
copy_from_user/copy_to_user would. The device node is a plain file.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib

import pytest

from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.sev_guest import (
    SNP_GET_EXT_REPORT,
    SNP_GET_REPORT,
    SevGuestProvider,
    SnpExtReportReq,
    SnpGuestRequestIoctl,
    SnpReportReq,
    SnpReportResp,
)
from attestation.snp import _x509
from attestation.snp.abi import parse_report

REPORT_DATA = hashlib.sha512(b"sev-guest test").digest()


def test_uapi_layout_matches_the_kernel_header():
    # include/uapi/linux/sev-guest.h on x86-64.
    assert ctypes.sizeof(SnpReportReq) == 96
    assert ctypes.sizeof(SnpReportResp) == 4000
    assert ctypes.sizeof(SnpGuestRequestIoctl) == 32
    assert SnpGuestRequestIoctl.req_data.offset == 8
    assert SnpGuestRequestIoctl.exitinfo2.offset == 24
    assert SnpExtReportReq.certs_address.offset == 96
    assert SnpExtReportReq.certs_len.offset == 104
    assert ctypes.sizeof(SnpExtReportReq) == 112
    # _IOWR('S', 0x0 / 0x2, struct snp_guest_request_ioctl)
    assert (SNP_GET_REPORT, SNP_GET_EXT_REPORT) == (0xC0205300, 0xC0205302)


def test_exitinfo2_splits_into_firmware_and_vmm_errors():
    arg = SnpGuestRequestIoctl(exitinfo2=(2 << 32) | 0x16)
    assert (arg.fw_error, arg.vmm_error) == (0x16, 2)


def test_plain_report(tmp_path, fake_sev_guest, sim):
    kernel = fake_sev_guest()
    provider = SevGuestProvider(tmp_path, extended=False, ioctl=kernel, vmpl=1)
    evidence = provider.get_evidence(REPORT_DATA)
    report = parse_report(evidence.raw)
    assert (report.report_data, report.vmpl, report.chip_id) == (REPORT_DATA, 1, sim.chip_id)
    assert evidence.certs == b"" and evidence.tee == "sev-snp" and evidence.provider == "sev-guest"
    assert kernel.calls == [(SNP_GET_REPORT, 0)]


def test_extended_report_carries_host_certs(tmp_path, fake_sev_guest, sim, host_cert_table):
    kernel = fake_sev_guest(certs=host_cert_table)
    evidence = SevGuestProvider(tmp_path, ioctl=kernel).get_evidence(REPORT_DATA)
    assert parse_report(evidence.raw).report_data == REPORT_DATA
    assert _x509.split_certificates(evidence.certs) == _x509.split_certificates(sim.certs_pem())
    assert kernel.calls == [(SNP_GET_EXT_REPORT, 8192)]


def test_certs_buffer_too_small_grows_to_what_the_kernel_says(
    tmp_path, fake_sev_guest, sim, host_cert_table
):
    # A 3-page table: the first request with one page gets EIO + INVALID_LEN + 12288.
    table = host_cert_table + bytes(3 * 4096 - len(host_cert_table) - 100)
    kernel = fake_sev_guest(certs=table)
    provider = SevGuestProvider(tmp_path, ioctl=kernel, initial_certs_len=4096)
    evidence = provider.get_evidence(REPORT_DATA)
    assert kernel.calls == [(SNP_GET_EXT_REPORT, 4096), (SNP_GET_EXT_REPORT, 12288)]
    assert len(_x509.split_certificates(evidence.certs)) == 3


def test_host_without_certs_gives_empty_certs(tmp_path, fake_sev_guest):
    evidence = SevGuestProvider(tmp_path, ioctl=fake_sev_guest()).get_evidence(REPORT_DATA)
    assert evidence.certs == b""


def test_firmware_error_is_named_fail(tmp_path, fake_sev_guest):
    provider = SevGuestProvider(tmp_path, ioctl=fake_sev_guest(fw_error=0x16))
    with pytest.raises(ProviderError, match="firmware status 0x16 INVALID_PARAM") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "sev_guest.ioctl"
    assert info.value.actual == "0x16"


def test_host_throttling_is_named_fail(tmp_path, fake_sev_guest):
    provider = SevGuestProvider(tmp_path, ioctl=fake_sev_guest(busy=True))
    with pytest.raises(ProviderError, match="throttling"):
        provider.get_evidence(REPORT_DATA)


def test_msg_report_rsp_status_fail(tmp_path, fake_sev_guest):
    provider = SevGuestProvider(tmp_path, ioctl=fake_sev_guest(status=0x16))
    with pytest.raises(ProviderError, match="INVALID_PARAMETERS") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "sev_guest.status"


def test_short_report_size_fail(tmp_path, fake_sev_guest):
    provider = SevGuestProvider(tmp_path, ioctl=fake_sev_guest(report_size=1000))
    with pytest.raises(ProviderError, match="report_size") as info:
        provider.get_evidence(REPORT_DATA)
    assert (info.value.check, info.value.actual) == ("sev_guest.short_read", 1000)


def test_table_larger_than_the_kernel_allows_fail(tmp_path, fake_sev_guest):
    kernel = fake_sev_guest(certs=b"\x01" * (5 * 4096))
    provider = SevGuestProvider(tmp_path, ioctl=kernel)
    with pytest.raises(ProviderError, match="does not fit") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.actual == 5 * 4096


def test_unknown_ioctl_is_reported(tmp_path, fake_sev_guest):
    def old_kernel(fd, request, arg):
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    with pytest.raises(ProviderError, match="does not know the request"):
        SevGuestProvider(tmp_path, ioctl=old_kernel).get_evidence(REPORT_DATA)


def test_missing_device_is_unavailable_fail(tmp_path):
    provider = SevGuestProvider(tmp_path)
    with pytest.raises(ProviderUnavailable, match="does not exist") as info:
        provider.get_evidence(REPORT_DATA)
    assert info.value.check == "sev_guest.device"


def test_bad_buffer_size_rejected_fail(tmp_path):
    with pytest.raises(ProviderError, match="whole pages"):
        SevGuestProvider(tmp_path, initial_certs_len=5000)
