"""attestation.tdx.collateral: readers (dcap-qvl JSON, PCS-response folders), cache layout."""

from __future__ import annotations

import json
import shutil

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.errors import ParseError, UsageError
from attestation.tdx.abi import parse_pem_chain
from attestation.tdx.collateral import (
    TdxCollateral,
    crl_der,
    decode_issuer_chain,
    list_cache,
    load_collateral,
    signed_body,
    split_signed_body,
    write_cache,
)

FIELDS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)


def _same(a: TdxCollateral, b: TdxCollateral) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in FIELDS)


def _signature_ok(chain_pem: str, signed: str, signature: bytes) -> bool:
    leaf = x509.load_pem_x509_certificate(chain_pem.encode())
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(encode_dss_signature(r, s), signed.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_signed_bytes_are_cut_out_verbatim(vector):
    body = vector("tdx/gotdxguest_v4_spr/tcb_info_50806f000000.json").read_text()
    chain = vector("tdx/gotdxguest_v4_spr/tcb_info_issuer_chain.pem").read_text()
    signed, signature = split_signed_body(body, "tcbInfo", check="t")
    assert _signature_ok(chain, signed, signature)
    # Re-serializing would change the bytes (spacing/escapes) and break Intel's signature.
    reserialized = json.dumps(json.loads(signed))
    assert reserialized != signed
    assert not _signature_ok(chain, reserialized, signature)
    # Whitespace around the members does not matter; the value's bytes are what is kept.
    spaced = f' {{ "signature" : "{signature.hex()}" ,\n "tcbInfo" :  {signed} }} '
    assert split_signed_body(spaced, "tcbInfo", check="t") == (signed, signature)
    assert split_signed_body(signed_body("tcbInfo", signed, signature), "tcbInfo", check="t") == (
        signed,
        signature,
    )


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"tcbInfo": {}}',
        '{"tcbInfo": {}, "signature": "ab", "extra": 1}',
        '{"tcbInfo": {}, "signature": 5}',
        '{"tcbInfo": {}, "signature": "xyz"}',
    ],
)
def test_malformed_pcs_bodies(body):
    with pytest.raises(ParseError):
        split_signed_body(body, "tcbInfo", check="collateral.tcb_info")


def test_dcap_json_round_trip(vector):
    text = vector("tdx/dcapqvl_v4_uptodate/collateral.json").read_text()
    collateral = TdxCollateral.from_json(text)
    again = TdxCollateral.from_json(collateral.to_json())
    assert _same(collateral, again)
    assert json.loads(collateral.to_json()) == json.loads(text)
    assert collateral.dcap.tcb_info == collateral.tcb_info
    assert collateral.fmspc == "b0c06f000000"
    assert collateral.pck_crl_ca == "platform"


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda d: d.pop("tcb_info"), "collateral.json"),
        (lambda d: d.update(surprise=1), "collateral.json"),
        (lambda d: d.update(pck_crl="zz"), "collateral.pck_crl"),
        (lambda d: d.update(tcb_info_signature="00" * 63), "collateral.tcb_info_signature"),
        (lambda d: d.update(tcb_info="{}"), "collateral.tcb_info"),
        (lambda d: d.update(tcb_info_issuer_chain="garbage"), "collateral.tcb_info_issuer_chain"),
        (lambda d: d.update(root_ca_crl="3000"), "collateral.root_ca_crl"),
    ],
)
def test_bad_dcap_json_is_a_parse_error(vector, change, check):
    doc = json.loads(vector("tdx/dcapqvl_v4_uptodate/collateral.json").read_text())
    change(doc)
    with pytest.raises(ParseError) as info:
        TdxCollateral.from_json(json.dumps(doc))
    assert info.value.check == check


def test_not_json_at_all():
    with pytest.raises(ParseError):
        TdxCollateral.from_json(b"\x00\xff\xfe")


def test_cache_round_trip_and_lookup_paths(vector, tmp_path):
    text = vector("tdx/dcapqvl_v4_uptodate/collateral.json").read_text()
    original = TdxCollateral.from_json(text)
    folder = write_cache(tmp_path, original)
    assert folder == tmp_path / "tdx" / "b0c06f000000"
    assert sorted(p.name for p in folder.iterdir()) == [
        "pck_crl_platform.der",
        "pck_crl_platform_issuer_chain.pem",
        "qe_identity.json",
        "qe_identity_issuer_chain.pem",
        "root_ca_crl.der",
        "tcb_info.json",
        "tcb_info_issuer_chain.pem",
    ]
    for where in (tmp_path, tmp_path / "tdx", folder):
        assert _same(load_collateral(where, fmspc="B0C06F000000"), original)
    assert [c.fmspc for c in list_cache(tmp_path)] == ["b0c06f000000"]
    assert list_cache(tmp_path / "empty") == []


def test_pcs_folder_spellings_load_the_same_bytes(vector):
    # go-tdx-guest's folder: PEM chains, .der CRLs; tinfoil's: URL-encoded chains, .crl CRLs.
    spr = load_collateral(vector("tdx/gotdxguest_v4_spr"), fmspc="50806f000000")
    assert spr.fmspc == "50806f000000"
    assert spr.tcb_evaluation_data_number == 15
    tinfoil = load_collateral(vector("tdx/tinfoil_v4_agpl/collateral"), fmspc="90c06f000000")
    processor = load_collateral(
        vector("tdx/tinfoil_v4_agpl/collateral"), fmspc="90c06f000000", ca="processor"
    )
    assert (tinfoil.pck_crl_ca, processor.pck_crl_ca) == ("platform", "processor")
    other = load_collateral(vector("tdx/tinfoil_v4_agpl/collateral"), fmspc="00a06d080000")
    assert other.fmspc == "00a06d080000"


def test_missing_item_names_what_was_looked_for(vector, tmp_path):
    for item in vector("tdx/gotdxguest_v4_spr").iterdir():
        if item.is_file() and item.name != "qe_identity.json":
            shutil.copy(item, tmp_path / item.name)
    with pytest.raises(UsageError) as info:
        load_collateral(tmp_path, fmspc="50806f000000")
    assert info.value.check == "collateral.qe_identity"
    assert "qe_identity.json" in str(info.value.expected)
    with pytest.raises(UsageError):
        load_collateral(tmp_path / "nowhere", fmspc="50806f000000")


def test_url_encoded_chain_decodes_to_the_renewed_tcb_signing_chain(vector):
    # README: tinfoil's header chain and dcap-qvl's 2026 JSON carry the same renewed cert.
    encoded = vector("tdx/tinfoil_v4_agpl/collateral/tcb_info_90c06f000000_chain.txt").read_bytes()
    assert b"%0A" in encoded
    decoded = decode_issuer_chain(encoded)
    doc = json.loads(vector("tdx/dcapqvl_v5_no_tcb_level_match/collateral.json").read_text())
    ours = parse_pem_chain(decoded.encode(), check="t", count=2)
    theirs = parse_pem_chain(doc["tcb_info_issuer_chain"].encode(), check="t", count=2)
    assert ours == theirs
    leaf = x509.load_der_x509_certificate(ours[0])
    assert leaf.not_valid_after_utc.year == 2032
    assert decode_issuer_chain(decoded) == decoded  # PEM passes through


def test_crl_encodings(vector):
    der = vector("tdx/gotdxguest_v4_spr/root_ca_crl.der").read_bytes()
    pem = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
    assert crl_der(der, "c") == der
    assert crl_der(pem, "c") == der
    assert crl_der(der.hex().encode() + b"\n", "c") == der
    with pytest.raises(ParseError):
        crl_der(b"not a crl", "c")


def test_validity_window_of_the_spr_collateral(vector):
    spr = load_collateral(vector("tdx/gotdxguest_v4_spr"), fmspc="50806f000000")
    start, end = spr.validity()
    assert start.isoformat() == "2023-06-18T08:42:58+00:00"
    assert end.isoformat() == "2023-07-08T07:24:59+00:00"
    summary = spr.summary()
    assert summary["valid_from"] == "2023-06-18T08:42:58Z"
    assert summary["pck_ca"] == "platform"
