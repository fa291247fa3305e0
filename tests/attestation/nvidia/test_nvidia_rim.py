"""NVIDIA RIMs: XML-DSig to the pinned RIM root, the digest before any value, then matching."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from attestation.errors import ParseError, PolicyError, SignatureError
from attestation.nvidia.abi import parse_report
from attestation.nvidia.rim import match_measurements, verify_rim

RIM_AT = datetime(2024, 6, 1, tzinfo=UTC)  # inside both VBIOS signer windows
FOLDER = "nvidia/nvsdk_gh100_535_86_rims"
PROD = "vbios_rim_96.00.5E.00.01_2023-06.swidtag"
LATER = "vbios_rim_96.00.5E.00.01_2023-12.xml"
MODIFIED = "driver_rim_535.86.09_modified.xml"


@pytest.fixture
def rims(vectors):
    folder = vectors / FOLDER
    if not folder.is_dir():
        pytest.skip(f"vector folder {folder} missing")
    return lambda name: (folder / name).read_bytes()


@pytest.fixture
def report(vectors):
    return parse_report((vectors / FOLDER / "report.bin").read_bytes())


def test_prod_vbios_rim_matches_all_twelve(rims, report):
    rim = verify_rim(rims(PROD), at=RIM_AT)
    assert rim.version == "96.00.5E.00.01" and rim.product == "GH100"
    assert len(rim.active()) == 12
    assert rim.signer.root_sha256.startswith("12977b51")
    match = match_measurements(report, [rim], chip="GH100")
    assert len(match.matched) == 12 and not match.mismatched
    assert match.uncovered  # the driver's indices: no driver RIM given
    assert not match.ok


def test_later_vbios_rim_mismatches_index_9(rims, report):
    rim = verify_rim(rims(LATER), at=RIM_AT)
    match = match_measurements(report, [rim], chip="GH100")
    assert match.mismatched == (10,)  # RIM index 9 = SPDM block 10
    assert len(match.matched) == 11


@pytest.mark.parametrize("at", [RIM_AT, datetime(2026, 1, 1, tzinfo=UTC)])
def test_edited_driver_rim_fails_on_its_digest_first(rims, at):
    # Outside and inside its signer window alike: the digest is checked before the chain.
    with pytest.raises(SignatureError) as err:
        verify_rim(rims(MODIFIED), at=at)
    assert err.value.check == "nvidia.rim.digest"


def test_expired_rim_signer_fail(rims):
    with pytest.raises(SignatureError) as err:
        verify_rim(rims(PROD), at=datetime(2025, 7, 1, tzinfo=UTC))
    assert err.value.check == "nvidia.rim.chain.validity"


def test_payload_edit_fail_digest(rims):
    raw = rims(PROD)
    edited = raw.replace(b'index="1" active="True"', b'index="1" active="False"', 1)
    assert edited != raw
    with pytest.raises(SignatureError) as err:
        verify_rim(edited, at=RIM_AT)
    assert err.value.check == "nvidia.rim.digest"


def test_signed_info_edit_fail_signature(rims):
    raw = rims(PROD)
    start = raw.index(b"<ds:DigestValue>") + len(b"<ds:DigestValue>")
    # Re-sign nothing: change the signature value's first base64 character.
    sig = raw.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    while raw[sig : sig + 1].isspace():
        sig += 1
    first = raw[sig : sig + 1]
    tampered = raw[:sig] + (b"B" if first != b"B" else b"C") + raw[sig + 1 :]
    with pytest.raises(SignatureError) as err:
        verify_rim(tampered, at=RIM_AT)
    assert err.value.check == "nvidia.rim.signature"
    assert start < sig


def test_doctype_and_entities_fail(rims):
    raw = rims(PROD)
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + raw
    with pytest.raises(ParseError) as err:
        verify_rim(hostile, at=RIM_AT)
    assert err.value.check in ("nvidia.rim.doctype", "nvidia.rim.xml")


def test_other_signature_algorithms_fail(rims):
    raw = rims(PROD).replace(
        b"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        b"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    )
    with pytest.raises(ParseError) as err:
        verify_rim(raw, at=RIM_AT)
    assert err.value.check == "nvidia.rim.signaturemethod"


def test_rim_for_another_version_fail(rims, vectors):
    rim = verify_rim(rims(PROD), at=RIM_AT)
    other = parse_report((vectors / "nvidia/trustee_gh100_550/report.bin").read_bytes())
    with pytest.raises(PolicyError) as err:
        match_measurements(other, [rim], chip="GH100")
    assert err.value.check == "nvidia.rim.version"


def test_two_rims_active_on_one_index_fail(rims, report):
    prod = verify_rim(rims(PROD), at=RIM_AT)
    later = verify_rim(rims(LATER), at=RIM_AT)
    with pytest.raises(PolicyError) as err:
        match_measurements(report, [prod, later], chip="GH100")
    assert err.value.check == "nvidia.rim.overlap"
