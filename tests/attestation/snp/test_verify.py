"""attestation.snp.verify on the real vectors: each valid one verifies, each failure its
source names is rejected for that reason (vectors README section 1)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from attestation.errors import ParseError, SignatureError
from attestation.snp import _x509
from attestation.snp.abi import parse_report
from attestation.snp.roots import (
    PINNED_ARK_SHA256,
    amd_roots,
)
from attestation.snp.verify import (
    VerifyOptions,
    _verified_chain,
    clear_caches,
    load_cert_bundle,
    verify_attestation,
    verify_report_signature,
    verify_tcb_extensions,
    verify_vek_chain,
)

README_ARK_SHA256 = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}


def test_pinned_arks_are_the_published_ones():
    assert PINNED_ARK_SHA256 == README_ARK_SHA256
    for product, fingerprint in README_ARK_SHA256.items():
        roots = amd_roots(product)
        assert _x509.fingerprint(roots.ark) == fingerprint
        assert _x509.common_name(roots.ask.subject) == f"SEV-{product}"
        assert _x509.common_name(roots.asvk.subject) == f"SEV-VLEK-{product}"


def test_bundled_roots_match_amd_kds_chains(vectors):
    # The bundled file is ours; the certificates in it must be exactly AMD's.
    for product in README_ARK_SHA256:
        roots = amd_roots(product)
        for kind, inter in (("vcek", roots.ask), ("vlek", roots.asvk)):
            pem = vectors / "snp" / "amd_chains" / f"{product.lower()}_{kind}_cert_chain.pem"
            ask_der, ark_der = _x509.split_certificates(pem.read_bytes())
            assert inter.public_bytes(Encoding.DER) == ask_der
            assert roots.ark.public_bytes(Encoding.DER) == ark_der


def test_every_valid_vector_verifies(snp_vector):
    report = parse_report(snp_vector.report)
    chain = verify_attestation(report, snp_vector.certs, VerifyOptions(now=snp_vector.at))
    assert chain.product == snp_vector.product
    assert chain.signing_key == snp_vector.signing_key
    assert chain.ark_sha256 == README_ARK_SHA256[snp_vector.product]
    assert not chain.simulated
    assert dict(chain.vek_tcb) == report.reported_tcb.components()


def test_every_vector_verifies_with_only_the_vek(snp_vector):
    # The ASK/ASVK and ARK then come from the bundled, pinned roots.
    report = parse_report(snp_vector.report)
    options = VerifyOptions(now=snp_vector.at, product=snp_vector.product)
    chain = verify_attestation(report, snp_vector.certs_vek_only, options)
    assert chain.product == snp_vector.product


def test_vector_outside_vek_validity_fail(snp_vector):
    report = parse_report(snp_vector.report)
    before = snp_vector.vek.not_valid_before_utc - timedelta(seconds=1)
    after = snp_vector.vek.not_valid_after_utc + timedelta(seconds=1)
    for at in (before, after):
        with pytest.raises(SignatureError) as err:
            verify_attestation(report, snp_vector.certs, VerifyOptions(now=at))
        assert err.value.check == "chain.validity"


def test_vlek_expired_at_now_fail(named_vector):
    # README: the trustee VLEK is valid only 2024-12-10 .. 2025-12-10.
    vector = named_vector("trustee_milan_v3_vlek")
    report = parse_report(vector.report)
    verify_attestation(report, vector.certs, VerifyOptions(now=datetime(2025, 6, 1, tzinfo=UTC)))
    with pytest.raises(SignatureError, match=r"chain\.validity"):
        verify_attestation(
            report, vector.certs, VerifyOptions(now=datetime(2026, 1, 1, tzinfo=UTC))
        )


@pytest.mark.parametrize(
    ("folder", "tampered", "check"),
    [
        # ms tampered_attestation: byte 100 ^= 0xFF -> "Signature verification error"
        ("ms_milan_v3", "report_byte100_xor_ff.bin", "report.signature"),
        # virtee milan_report_invalid: byte 21 ^= 0x80 -> the report does not verify
        ("virtee_milan_v2", "report_byte21_xor_80.bin", "report.signature"),
        # trustee check_report_signature_failure: byte 42 += 1 -> the signature fails
        ("trustee_milan_v2_vcek", "report_byte42_plus1.bin", "report.signature"),
        # trustee check_report_tcb_failure: byte 384 += 1 (REPORTED_TCB.bootloader)
        ("trustee_milan_v2_vcek", "report_byte384_plus1.bin", "vek.tcb.bootloader"),
        # trustee check_vlek_report_signature_failure: byte 42 += 1
        ("trustee_milan_v3_vlek", "report_byte42_plus1.bin", "report.signature"),
    ],
)
def test_tampered_vectors_fail(named_vector, folder, tampered, check):
    vector = named_vector(folder)
    report = parse_report((vector.folder / "tampered" / tampered).read_bytes())
    with pytest.raises(SignatureError) as err:
        verify_attestation(report, vector.certs, VerifyOptions(now=vector.at))
    assert err.value.check == check


def test_tampered_tcb_also_breaks_the_signature(named_vector):
    # README: byte 384 += 1 fails the TCB check "and the signature fails as well".
    vector = named_vector("trustee_milan_v2_vcek")
    report = parse_report((vector.folder / "tampered" / "report_byte384_plus1.bin").read_bytes())
    chain = verify_vek_chain(vector.certs, VerifyOptions(now=vector.at))
    with pytest.raises(SignatureError, match=r"vek\.tcb\.bootloader"):
        verify_tcb_extensions(report, chain)
    with pytest.raises(SignatureError, match=r"report\.signature"):
        verify_report_signature(report, chain)


def test_milan_report_with_genoa_ask_fail(named_vector, vectors):
    # ms milan_genoa_ask: Milan report and VCEK with the Genoa ASK -> chain error.
    milan = named_vector("ms_milan_v3")
    genoa_ask = (vectors / "snp" / "ms_genoa_v3" / "ask.pem").read_bytes()
    certs = milan.certs_vek_only + genoa_ask + (milan.folder / "ark.pem").read_bytes()
    with pytest.raises(SignatureError) as err:
        verify_attestation(parse_report(milan.report), certs, VerifyOptions(now=milan.at))
    assert err.value.check == "chain.ask"
    assert (err.value.expected, err.value.actual) == ("SEV-Milan", "SEV-Genoa")


def test_ask_as_trusted_root_fail(named_vector):
    # ms milan_invalid_root_certificate: the ASK given as the root -> invalid root.
    milan = named_vector("ms_milan_v3")
    ask = _x509.load_certificate_der(
        _x509.split_certificates((milan.folder / "ask.pem").read_bytes())[0]
    )
    options = VerifyOptions(now=milan.at, trusted_arks={_x509.fingerprint(ask): "Milan"})
    with pytest.raises(SignatureError) as err:
        verify_attestation(parse_report(milan.report), milan.certs, options)
    assert err.value.check == "chain.ark"
    assert "not a trusted ARK" in err.value.detail


def test_unpinned_root_fail(named_vector, snp_sim):
    # A chain ending in any root other than the pinned ARKs is refused by default.
    milan = named_vector("ms_milan_v3")
    foreign_root = snp_sim.certs_pem().split(b"-----END CERTIFICATE-----")[2]
    certs = milan.certs_vek_only + (milan.folder / "ask.pem").read_bytes() + foreign_root
    certs += b"-----END CERTIFICATE-----\n"
    with pytest.raises(SignatureError, match=r"chain\.ark"):
        verify_attestation(parse_report(milan.report), certs, VerifyOptions(now=milan.at))


@pytest.mark.parametrize(
    ("offset", "change"),
    [
        (40, lambda b: b ^ 0xFF),  # virtee milan_chain_invalid: VCEK DER byte 40 ^= 0xFF
        (42, lambda b: (b + 1) & 0xFF),  # trustee check_vcek_signature_failure: byte 42 += 1
    ],
)
def test_modified_vcek_fail(named_vector, offset, change):
    vector = named_vector("virtee_milan_v2")
    der = bytearray((vector.folder / "vcek.der").read_bytes())
    der[offset] = change(der[offset])
    certs = bytes(der) + b""
    with pytest.raises((ParseError, SignatureError)) as err:
        verify_attestation(parse_report(vector.report), certs, VerifyOptions(now=vector.at))
    assert err.value.check.startswith(("chain", "certs", "vek"))


def test_vcek_of_another_chip_fail(named_vector):
    # virtee and trustee Milan VCEKs endorse the same TCB, but not the same chip.
    report = parse_report(named_vector("virtee_milan_v2").report)
    other = named_vector("trustee_milan_v2_vcek")
    with pytest.raises(SignatureError) as err:
        verify_attestation(report, other.certs_vek_only, VerifyOptions(now=other.at))
    assert err.value.check == "vek.hwid"


def test_vlek_report_with_vcek_fail(named_vector):
    report = parse_report(named_vector("trustee_milan_v3_vlek").report)
    vcek = named_vector("ms_milan_v3")
    with pytest.raises(SignatureError) as err:
        verify_attestation(report, vcek.certs, VerifyOptions(now=vcek.at))
    assert err.value.check == "report.key_info.signing_key"
    assert (err.value.expected, err.value.actual) == ("VCEK", "VLEK")


def test_explicit_product_mismatch_fail(named_vector):
    vector = named_vector("gosevguest_milan_v2")
    options = VerifyOptions(now=vector.at, product="Genoa")
    with pytest.raises(SignatureError) as err:
        verify_attestation(parse_report(vector.report), vector.certs, options)
    assert err.value.check == "chain.product"


def test_report_cpuid_must_name_chain_product_fail(named_vector):
    # A Genoa report presented with a Milan VCEK is stopped before any TCB comparison.
    report = parse_report(named_vector("ms_genoa_v3").report)
    milan = named_vector("ms_milan_v3")
    with pytest.raises(SignatureError) as err:
        verify_attestation(report, milan.certs, VerifyOptions(now=milan.at))
    assert err.value.check == "report.cpuid"
    assert (err.value.expected, err.value.actual) == ("Milan", "Genoa")


def test_turin_vcek_chains_to_bundled_turin_roots(vectors):
    # virtee turin_ca_stack: the VCEK (fmcSPL extension, 8-byte hwID) verifies under Turin.
    der = (vectors / "snp" / "virtee_turin_vcek_only" / "vcek.der").read_bytes()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    chain = verify_vek_chain(der, VerifyOptions(now=at))
    assert chain.product == "Turin" and chain.product_name == "Turin"
    assert chain.vek_tcb == {"fmc": 0, "bootloader": 0, "tee": 0, "snp": 0, "microcode": 9}
    assert chain.hwid is not None and len(chain.hwid) == 8
    vcek_pem = _x509.load_certificate_der(der).public_bytes(Encoding.PEM)
    chain_pem = (vectors / "snp" / "virtee_turin_vcek_only" / "cert_chain_turin.pem").read_bytes()
    full = verify_vek_chain(vcek_pem + chain_pem, VerifyOptions(now=at))
    assert full.ark_sha256 == README_ARK_SHA256["Turin"]


def test_turin_hwid_is_first_8_bytes_of_chip_id(named_vector):
    vector = named_vector("ms_turin_v5")
    report = parse_report(vector.report)
    chain = verify_attestation(report, vector.certs, VerifyOptions(now=vector.at))
    assert chain.hwid == report.chip_id[:8]


def test_chain_is_cached_but_signature_checked_every_time(named_vector):
    vector = named_vector("ms_genoa_v3")
    clear_caches()
    options = VerifyOptions(now=vector.at)
    good = parse_report(vector.report)
    verify_attestation(good, vector.certs, options)
    verify_attestation(good, vector.certs, options)
    assert _verified_chain.cache_info().hits >= 1
    bad = bytearray(vector.report)
    bad[0x50] ^= 1  # one bit of REPORT_DATA
    with pytest.raises(SignatureError, match=r"report\.signature"):
        verify_attestation(parse_report(bytes(bad)), vector.certs, options)


def test_vek_with_serial_zero_loads_without_warning(named_vector):
    # Real VCEKs carry serial number 0; cryptography warns about it, and we silence
    # exactly that warning while loading (see _x509.load_certificate_der).
    vector = named_vector("ms_milan_v3")
    clear_caches()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bundle = load_cert_bundle(vector.certs)
        chain = verify_vek_chain(vector.certs, VerifyOptions(now=vector.at))
    assert bundle.vek_kind == "VCEK" and chain.signing_key == "VCEK"
    # The warning is real (so the filter matters), and it is about the serial number.
    with pytest.warns(CryptographyDeprecationWarning, match="serial number"):
        x509.load_pem_x509_certificate(vector.certs_vek_only)


@pytest.mark.parametrize(
    ("certs", "check"),
    [
        (b"", "certs.empty"),
        (b"not a certificate", "certs.format"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA", "certs.pem"),
        (b"\x30\x82\xff\xff\x00", "der.truncated"),
    ],
)
def test_unreadable_certs_fail(certs, check):
    with pytest.raises(ParseError) as err:
        load_cert_bundle(certs)
    assert err.value.check == check


def test_two_veks_fail(named_vector):
    certs = named_vector("ms_milan_v3").certs_vek_only + named_vector("ms_genoa_v3").certs_vek_only
    with pytest.raises(ParseError, match=r"certs\.vek"):
        load_cert_bundle(certs)


def test_no_vek_fail(named_vector):
    with pytest.raises(ParseError, match=r"certs\.vek"):
        load_cert_bundle((named_vector("ms_milan_v3").folder / "ask.pem").read_bytes())


def test_naive_time_is_utc():
    assert VerifyOptions(now=datetime(2025, 1, 1)).time() == datetime(2025, 1, 1, tzinfo=UTC)


def _ec_cert(extensions: dict[str, bytes]) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec as ec_keys

    key = ec_keys.generate_private_key(ec_keys.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "SEV-VCEK")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    return builder.sign(key, hashes.SHA384()).public_bytes(Encoding.PEM)


@pytest.mark.parametrize(
    ("extensions", "actual"),
    [
        ({}, "neither"),
        ({_x509.OID_HWID: bytes(64), _x509.OID_CSP_ID: b"\x16\x01x"}, "both"),
    ],
)
def test_vek_kind_must_be_unambiguous_fail(extensions, actual):
    # The kind comes from AMD's extensions: hwID marks a VCEK, cspID a VLEK.
    with pytest.raises(ParseError) as err:
        load_cert_bundle(_ec_cert(extensions))
    assert err.value.check == "certs.vek" and err.value.actual == actual
