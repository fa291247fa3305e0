"""NVIDIA GPU evidence: every real vector gives the outcome the vectors README records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from attestation.errors import BindingError, ParseError, SignatureError, TcmeError
from attestation.nvidia.abi import BLOCK_SIZE, OpaqueType, parse_report
from attestation.nvidia.chain import leaf_fwid, load_chain, verify_chain
from attestation.nvidia.roots import device_identity_ca, rim_root_ca
from attestation.nvidia.verify import (
    DeviceEvidence,
    verify_device_evidence,
    verify_system,
)

AT = datetime(2025, 10, 1, tzinfo=UTC)
OUTCOMES = {
    "trustee_gh100_550": ("ok", "HOPPER", "478176379286082186618948445787393647364802107249"),
    "trustee_gh100_coco_580": ("ok", "HOPPER", None),
    "nvsdk_gb100_575": ("ok", "BLACKWELL", "474146966256510137525212816567191319424869109849"),
    "nvsdk_gh100_580_159": ("ok", "HOPPER", "509096176156678437554566035365892618958504054724"),
    "nvsdk_gh100_535_86_rims": ("ok", "HOPPER", None),
    "nvsdk_gh100_590_12": ("ok", "HOPPER", "462496802410983848477057609082198727668509984363"),
    "nvsdk_gh100_invalid_signature": ("nvidia.report.signature", "HOPPER", None),
}


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_every_gpu_vector_gives_its_recorded_outcome(named_gpu, name):
    vector = named_gpu(name)
    outcome, arch, ueid = OUTCOMES[name]
    if outcome != "ok":
        with pytest.raises(SignatureError) as err:
            verify_device_evidence(vector.evidence, nonce=vector.nonce, at=AT)
        assert err.value.check == outcome
        return
    device = verify_device_evidence(vector.evidence, nonce=vector.nonce, at=AT)
    assert device.arch == arch
    assert device.kind == "gpu"
    assert device.hwmodel == ("GB100" if arch == "BLACKWELL" else "GH100") + " A01 GSP BROM"
    if ueid is not None:
        assert device.ueid == ueid
    if name == "nvsdk_gh100_535_86_rims":  # driver 535 predates the FWID field
        assert device.fwid is None and device.fwid_source == "absent"
    else:
        assert device.fwid == device.report.opaque.fwid
        expected_oid = "2.23.133.5.4.1.1" if arch == "BLACKWELL" else "2.23.133.5.4.1"
        assert device.fwid_source == expected_oid


def test_parse_round_trips_and_equals_nvsdk_parse(vectors, named_gpu):
    vector = named_gpu("nvsdk_gh100_580_159")
    report = parse_report(vector.report)
    assert report.to_bytes() == vector.report
    folder = vectors / "nvidia" / "nvsdk_gh100_580_159"
    request = json.loads((folder / "expected_parse_request.json").read_text())
    response = json.loads((folder / "expected_parse_response.json").read_text())
    assert "0x" + report.nonce.hex() == request["Nonce"]
    assert "0x" + report.responder_nonce.hex() == response["Nonce"]
    assert len(report.blocks) == response["NumberOfBlocks"] == 64
    assert len(report.blocks) * BLOCK_SIZE == response["MeasurementRecordLength"]
    assert len(report.opaque_raw) == response["OpaqueLength"]
    assert "0x" + report.signature.hex() == response["Signature"]
    blocks = response["MeasurementRecord"]["MeasurementBlocks"]
    for block in report.blocks:
        assert "0x" + block.value.hex() == blocks[str(block.index)]["DMTFSpecMeasurementValue"]
    opaque = response["OpaqueData"]["OpaqueDataField"]
    assert "0x" + report.opaque.fwid.hex() == opaque["OPAQUE_FIELD_ID_FWID"]
    assert report.opaque.driver_version == "580.159.03"


def test_claims_equal_trustee_expected_claims(vectors, named_gpu):
    vector = named_gpu("trustee_gh100_550")
    expected = json.loads((vectors / "nvidia/trustee_gh100_550/expected_claims.json").read_text())
    report = parse_report(vector.report)
    config = expected["config"]
    assert report.opaque.driver_version == config["driver_version"]
    assert report.opaque.vbios_version == config["vbios_version"]
    assert report.opaque.fwid.hex() == config["fwid"]
    assert report.opaque.chip_sku == config["chip_sku"]
    assert report.opaque.board_id == config["board_id"]
    assert report.opaque.status(OpaqueType.PROTECTED_PCIE_STATUS) == "disabled"  # "U"
    assert report.opaque.status(OpaqueType.NVDEC0_STATUS) == "disabled"
    measured = {str(i): v.hex() for i, v in report.measurements().items()}
    assert measured == expected["measurements"]


def test_trailing_padding_is_tolerated_only_when_zero(named_gpu):
    vector = named_gpu("trustee_gh100_coco_580")
    assert parse_report(vector.report).trailing_zero_bytes == 1
    with pytest.raises(ParseError) as err:
        parse_report(vector.report[:-1] + b"\x01")
    assert err.value.check == "nvidia.report.trailing"


def test_truncation_fail_names_the_field(named_gpu):
    vector = named_gpu("trustee_gh100_550")
    for cut in (0, 10, 40, 500, len(vector.report) - 97, len(vector.report) - 1):
        with pytest.raises(ParseError) as err:
            parse_report(vector.report[:cut])
        assert err.value.check.startswith("nvidia.")


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("case2_root_only.pem", "nvidia.chain.length"),
        ("case3_missing_intermediate.pem", "nvidia.chain.link"),
        ("case4_missing_leaf.pem", "nvidia.fwid.certificate"),
    ],
)
def test_bad_chains_fail_naming_the_check(vectors, named_gpu, case, check):
    vector = named_gpu("trustee_gh100_550")
    certs = (vectors / "nvidia/trustee_gh100_550/bad_chains" / case).read_bytes()
    with pytest.raises(SignatureError) as err:
        verify_device_evidence(DeviceEvidence(vector.report, certs), nonce=vector.nonce, at=AT)
    assert err.value.check == check


def test_chain_of_another_gpu_fails_fwid(named_gpu):
    report = named_gpu("trustee_gh100_550")
    other = named_gpu("nvsdk_gh100_580_159")
    with pytest.raises(SignatureError) as err:
        verify_device_evidence(
            DeviceEvidence(report.report, other.certs), nonce=report.nonce, at=AT
        )
    # The other leaf's key does not verify this report: the signature step fails first.
    assert err.value.check == "nvidia.report.signature"


def test_chain_to_another_root_fails(named_gpu):
    vector = named_gpu("trustee_gh100_550")
    with pytest.raises(SignatureError) as err:
        verify_chain(load_chain(vector.certs), root=rim_root_ca(), at=AT, check="nvidia.chain")
    assert err.value.check == "nvidia.chain.root"


def test_chain_outside_validity_fails(named_gpu):
    vector = named_gpu("nvsdk_gb100_575")  # leaf valid from 2023-06-20
    with pytest.raises(SignatureError) as err:
        verify_device_evidence(
            vector.evidence, nonce=vector.nonce, at=datetime(2023, 1, 1, tzinfo=UTC)
        )
    assert err.value.check == "nvidia.chain.validity"


def test_blackwell_fwid_comes_from_dice_tcbinfo(named_gpu):
    vector = named_gpu("nvsdk_gb100_575")
    chain = load_chain(vector.certs)
    fwid, oid = leaf_fwid(chain[0])
    assert oid == "2.23.133.5.4.1.1"
    assert fwid == parse_report(vector.report).opaque.fwid
    assert all(e.oid.dotted_string != "2.23.133.5.4.1" for e in chain[0].extensions)


def test_wrong_nonce_fail(gpu_vector):
    # The vector with a broken signature is refused at its signature, which is checked
    # before the nonce: still refused, at the first check that fails.
    broken = gpu_vector.name == "nvsdk_gh100_invalid_signature"
    with pytest.raises(SignatureError if broken else BindingError) as err:
        verify_device_evidence(gpu_vector.evidence, nonce=bytes(32), at=AT)
    assert err.value.check == ("nvidia.report.signature" if broken else "nvidia.nonce")


def test_same_gpu_replayed_under_another_nonce_fail(named_gpu, ppcie):
    """nvsdk_gh100_590_12 and PPCIe GPU 7 are one physical GPU, attested under two nonces."""
    single = named_gpu("nvsdk_gh100_590_12")
    devices, system_nonce = ppcie
    gpu7 = verify_device_evidence(devices[7], nonce=system_nonce, at=AT)
    alone = verify_device_evidence(single.evidence, nonce=single.nonce, at=AT)
    assert gpu7.ueid == alone.ueid  # the same GPU, genuinely
    with pytest.raises(BindingError) as err:
        verify_device_evidence(single.evidence, nonce=system_nonce, at=AT)
    assert err.value.check == "nvidia.nonce"
    with pytest.raises(BindingError):
        verify_device_evidence(devices[7], nonce=single.nonce, at=AT)


def test_responder_nonce_is_not_the_verifiers(named_gpu):
    vector = named_gpu("nvsdk_gh100_580_159")
    report = parse_report(vector.report)
    with pytest.raises(BindingError):
        verify_device_evidence(vector.evidence, nonce=report.responder_nonce, at=AT)


def test_bit_flips_in_the_signed_range_reject(named_gpu):
    """Every byte of request || response, and of the signature: one bit flipped each time
    (the bit moves with the position, so every bit position is covered many times)."""
    vector = named_gpu("trustee_gh100_550")
    report = bytearray(vector.report)
    verify_device_evidence(vector.evidence, nonce=vector.nonce, at=AT)  # unflipped: accepted
    for position in range(len(report)):
        flipped = bytearray(report)
        flipped[position] ^= 1 << (position % 8)
        with pytest.raises(TcmeError):
            verify_device_evidence(
                DeviceEvidence(bytes(flipped), vector.certs), nonce=vector.nonce, at=AT
            )


def test_pinned_roots_are_the_nvidia_cas():
    assert device_identity_ca().subject.rfc4514_string() == "O=NVIDIA,CN=NVIDIA Device Identity CA"
    assert "NVIDIA CoRIM signing Root CA" in rim_root_ca().subject.rfc4514_string()


# --- the protected-PCIe system, one unit ---------------------------------------------


def test_ppcie_system_verifies_as_one_unit(ppcie):
    devices, nonce = ppcie
    system = verify_system(devices, nonce=nonce, at=AT)
    assert len(system.gpus) == 8 and len(system.switches) == 4
    assert system.protected_pcie
    assert len({d.ueid for d in system.devices}) == 12
    assert {d.arch for d in system.switches} == {"LS10"}


@pytest.mark.parametrize("dropped", range(12))
def test_ppcie_dropping_any_device_fail(ppcie, dropped):
    devices, nonce = ppcie
    with pytest.raises(BindingError) as err:
        verify_system(devices[:dropped] + devices[dropped + 1 :], nonce=nonce, at=AT)
    assert err.value.check.startswith("nvidia.topology.")


def test_ppcie_swapping_a_device_fail(ppcie, named_gpu):
    devices, nonce = ppcie
    single = named_gpu("nvsdk_gh100_590_12")  # GPU 7 itself, under another nonce
    swapped = [*devices[:7], single.evidence, *devices[8:]]
    with pytest.raises(BindingError) as err:
        verify_system(swapped, nonce=nonce, at=AT)
    assert err.value.check == "nvidia.nonce"
    assert "device 7" in err.value.message()
    duplicated = [*devices[:7], devices[6], *devices[8:]]
    with pytest.raises(BindingError) as err:
        verify_system(duplicated, nonce=nonce, at=AT)
    assert err.value.check == "nvidia.system.duplicate"
    switch_twice = [*devices[:11], devices[8]]
    with pytest.raises(BindingError) as err:
        verify_system(switch_twice, nonce=nonce, at=AT)
    assert err.value.check == "nvidia.system.duplicate"
