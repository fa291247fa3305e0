"""Azure vTPM evidence: every README-verifiable vector verifies, every tampered one is
rejected by the check that failed, and single-bit flips anywhere are rejected."""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.azure.evidence import AzureEvidence, parse_azure_evidence
from attestation.azure.hcl import VARIABLE_DATA_OFFSET, build_hcl_report, parse_hcl_report
from attestation.azure.policy import AzurePolicy
from attestation.azure.quote import (
    check_nonce,
    check_qualifying_data,
    verify_pcr_digest,
    verify_quote_signature,
)
from attestation.azure.runtime_data import parse_runtime_data
from attestation.azure.tpm import parse_attest
from attestation.azure.verify import (
    check_runtime_data,
    check_td_report,
    parse_parts,
    verify_azure_evidence,
)
from attestation.errors import (
    BindingError,
    ParseError,
    PolicyError,
    SignatureError,
    TcmeError,
    UsageError,
)
from attestation.policy import Policy
from attestation.snp.abi import parse_report
from attestation.snp.verify import VerifyOptions, verify_attestation
from attestation.tdx.abi import parse_quote

from .conftest import AT, EVIDENCE_VECTORS, milan_v2_evidence

HW = {"snp": {"allowed_measurements": {"skip": True}}}
SKIP_PCRS = AzurePolicy.from_dict({**HW, "pcrs": {"skip": True}})


def _verify(evidence: bytes, nonce: bytes | None = None, **kw):
    kw.setdefault("azure_policy", SKIP_PCRS)
    return verify_azure_evidence(
        evidence, policy=Policy.unsafe_authenticity_only(), at=AT, nonce=nonce, **kw
    )


@pytest.mark.parametrize("name", sorted(EVIDENCE_VECTORS))
def test_trustee_evidence_verifies(azure_vector, name):
    vector = azure_vector(name)
    result = _verify(vector.evidence, vector.nonce)
    assert result.tee == "az-snp-vtpm"
    assert result.product == EVIDENCE_VECTORS[name]
    assert not result.simulated
    assert result.report_data == vector.nonce
    assert result.report.hardware.vmpl == 0


def test_trustee_pcr0_claims(azure_vector):
    # The PCR0 values trustee's tests assert (vectors README 4.1).
    expected = {
        "trustee_snp_milan_v3_ev0": "e15c4479",
        "trustee_snp_milan_v3_ev2_userdata": "84275b2f",
        "trustee_snp_genoa_v3": "afd689d0",
    }
    for name, prefix in expected.items():
        assert _verify(azure_vector(name).evidence).report.evidence.pcrs[0].hex().startswith(prefix)


def test_milan_v2_split_files_verify_with_supplied_chain(azure_vector):
    vector = azure_vector("trustee_snp_milan_v2")
    certs = (vector.folder / "vcek_ask_ark.pem").read_bytes()
    result = _verify(vector.evidence, b"challenge", certs=certs)
    assert result.product == "Milan"


def test_milan_v2_without_vcek_is_a_usage_error(azure_vector):
    with pytest.raises(UsageError, match=r"azure\.vcek"):
        _verify(azure_vector("trustee_snp_milan_v2").evidence)


def test_v0_and_v1_are_the_same_evidence(azure):
    v0 = parse_azure_evidence((azure / "trustee_tdx_v4" / "evidence_v0.json").read_bytes())
    v1 = parse_azure_evidence((azure / "trustee_tdx_v4" / "evidence_v1.json").read_bytes())
    assert (v0.hcl_report, v0.quote_message, v0.pcrs, v0.td_quote) == (
        v1.hcl_report,
        v1.quote_message,
        v1.pcrs,
        v1.td_quote,
    )
    assert v0.version == 0 and v1.version == 1


def test_round_trip_v1_json(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev0")
    parsed = parse_azure_evidence(vector.evidence)
    again = parse_azure_evidence(parsed.to_json())
    assert again.hcl_report == parsed.hcl_report and again.pcrs == parsed.pcrs
    assert _verify(parsed.to_json(), vector.nonce).product == "Milan"


@pytest.mark.parametrize(
    "respell",
    [lambda h: " " + h, lambda h: h + "\n", lambda h: h[:2] + " " + h[2:]],
    ids=["leading-space", "trailing-newline", "inner-space"],
)
def test_a_proxy_cannot_respell_a_hex_field(azure_vector, respell):
    # The v1 JSON has one spelling of each field; a second one that still decodes
    # to the same bytes must not verify (it would be a second identity of the document).
    doc = json.loads(
        parse_azure_evidence(azure_vector("trustee_snp_milan_v3_ev0").evidence).to_json()
    )
    doc["tpm_quote"]["message"] = respell(doc["tpm_quote"]["message"])
    with pytest.raises(ParseError) as err:
        parse_azure_evidence(json.dumps(doc).encode())
    assert err.value.check == "azure.evidence.tpm_quote.message"


def test_tdx_everything_but_tcb_status(azure_vector):
    """trustee_tdx_v4: every step but Intel's TCB status (no collateral for its FMSPC)."""
    vector = azure_vector("trustee_tdx_v4")
    parts, hcl, runtime, attest = parse_parts(vector.evidence)
    quote = parse_quote(parts.td_quote)
    check_td_report(hcl.hardware_report, quote)
    check_runtime_data(hcl, quote.body.report_data)
    sig = verify_quote_signature(attest, parts.quote_signature, runtime.ak)
    verify_pcr_digest(attest, parts.pcrs, sig)
    check_nonce(attest, b"challenge")
    assert parts.pcrs[0].hex().startswith("782b20b1")
    # The whole pipeline stops where the README says: no Intel collateral for this FMSPC.
    with pytest.raises(UsageError, match=r"collateral"):
        _verify(vector.evidence, b"challenge")


def test_tdx_tampered_variable_data(azure_vector, azure):
    vector = azure_vector("trustee_tdx_v4")
    parts, *_ = parse_parts(vector.evidence)
    tampered = (azure / "trustee_tdx_v4/tampered/hcl_report_byte_0x880_plus1.bin").read_bytes()
    hcl = parse_hcl_report(tampered)
    with pytest.raises(BindingError, match=r"azure\.runtime_data"):
        check_runtime_data(hcl, parse_quote(parts.td_quote).body.report_data)


def test_acvm_reports_bind_their_runtime_data(azure):
    for name, tee in (("acvm_snp_milan_v2", "sev-snp"), ("acvm_tdx", "tdx")):
        hcl = parse_hcl_report((azure / name / "hcl_report.bin").read_bytes())
        assert hcl.tee == tee
        assert hcl.hardware_report_data == hcl.expected_report_data()
        runtime = parse_runtime_data(hcl.variable_data)
        assert runtime.key_ids[0] == "HCLAkPub"


def test_acvm_snp_report_fails_with_other_chips_vcek(azure):
    folder = azure / "acvm_snp_milan_v2"
    parts = AzureEvidence(
        version=1,
        hcl_report=(folder / "hcl_report.bin").read_bytes(),
        quote_message=(azure / "acvm_vtpm_quote/quote_msg.bin").read_bytes(),
        quote_signature=(azure / "acvm_vtpm_quote/quote_sig.bin").read_bytes(),
        pcrs=tuple(
            bytes.fromhex(p) for p in json.loads((azure / "acvm_vtpm_quote/pcrs.json").read_text())
        ),
    )
    with pytest.raises(SignatureError):
        _verify(parts.to_json(), certs=(folder / "vcek_ask_ark_other_chip.pem").read_bytes())


def test_acvm_quote_with_its_akpub(azure):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    folder = azure / "acvm_vtpm_quote"
    ak = load_pem_public_key((folder / "akpub.pem").read_bytes())
    attest = parse_attest((folder / "quote_msg.bin").read_bytes())
    signature = (folder / "quote_sig.bin").read_bytes()
    sig = verify_quote_signature(attest, signature, ak)
    verify_pcr_digest(
        attest, [bytes.fromhex(p) for p in json.loads((folder / "pcrs.json").read_text())], sig
    )
    check_nonce(attest, b"challenge")
    with pytest.raises(BindingError, match=r"azure\.quote\.nonce"):
        check_nonce(attest, bytes.fromhex("01020304"))
    with pytest.raises(SignatureError, match=r"azure\.quote\.signature"):
        verify_quote_signature(attest, signature[::-1], ak)
    # var_data_unbound.json names another AK: the quote does not verify under it.
    other = parse_runtime_data((folder / "var_data_unbound.json").read_bytes()).ak
    with pytest.raises(SignatureError, match=r"azure\.quote\.signature"):
        verify_quote_signature(attest, signature, other)


@pytest.mark.parametrize(
    ("tampered", "error", "check"),
    [
        ("hcl_report_byte_0x1a6_set_0x00.bin", SignatureError, "report_signature|tcb"),
        ("hcl_report_byte_0x6e0_plus1.bin", BindingError, "azure.runtime_data"),
        ("hcl_report_byte_0x540_set_0x00.bin", ParseError, "runtime_data"),
    ],
)
def test_trustee_tampered_hcl_reports_fail(azure_vector, tampered, error, check):
    vector = azure_vector("trustee_snp_milan_v2")
    parts = parse_azure_evidence(vector.evidence)
    hcl = (vector.folder / "tampered" / tampered).read_bytes()
    evidence = AzureEvidence(**{**parts.__dict__, "hcl_report": hcl}).to_json()
    certs = (vector.folder / "vcek_ask_ark.pem").read_bytes()
    with pytest.raises(error, match=check):
        _verify(evidence, b"challenge", certs=certs)


@pytest.mark.parametrize(
    ("tampered", "field", "check"),
    [
        ("quote_sig_byte_0_xor_0x01.bin", "quote_signature", "azure.quote.signature"),
        ("quote_msg_extradata_byte_0x2c_xor_0x01.bin", "quote_message", "azure.quote.signature"),
    ],
)
def test_trustee_tampered_quotes_fail(azure_vector, tampered, field, check):
    vector = azure_vector("trustee_snp_milan_v2")
    parts = parse_azure_evidence(vector.evidence)
    evidence = AzureEvidence(
        **{**parts.__dict__, field: (vector.folder / "tampered" / tampered).read_bytes()}
    ).to_json()
    certs = (vector.folder / "vcek_ask_ark.pem").read_bytes()
    with pytest.raises(SignatureError, match=check):
        _verify(evidence, b"challenge", certs=certs)


def test_wrong_nonce_fail(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev0")
    with pytest.raises(BindingError, match=r"azure\.quote\.nonce"):
        _verify(vector.evidence, b"challengE")


def test_v2_user_data_must_start_with_nonce(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev2_userdata")
    with pytest.raises(BindingError, match=r"azure\.quote\.nonce"):
        _verify(vector.evidence, bytes.fromhex("123abc"))
    _parts, _hcl, runtime, _attest = parse_parts(vector.evidence)
    assert runtime.user_data[: len(vector.nonce)] == vector.nonce


def test_qualifying_data_rule(azure_vector):
    attest = parse_parts(azure_vector("trustee_snp_genoa_v3").evidence)[3]
    with pytest.raises(BindingError, match=r"azure\.quote\.extra_data"):
        check_qualifying_data(attest, bytes(64))


def test_swapped_pcr_value_fail(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev0")
    parts = parse_azure_evidence(vector.evidence)
    pcrs = list(parts.pcrs)
    pcrs[7] = hashlib.sha256(b"another boot").digest()
    evidence = AzureEvidence(**{**parts.__dict__, "pcrs": tuple(pcrs)}).to_json()
    with pytest.raises(SignatureError, match=r"azure\.quote\.pcr_digest"):
        _verify(evidence, vector.nonce)


def test_pcr_policy_pins_and_reports_every_violation(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev0")
    pcrs = parse_azure_evidence(vector.evidence).pcrs
    good = {str(i): pcrs[i].hex() for i in range(24)}
    _verify(vector.evidence, vector.nonce, azure_policy=AzurePolicy.from_dict({**HW, "pcrs": good}))
    bad = {**good, "4": "00" * 32, "7": ["11" * 32, "22" * 32]}
    with pytest.raises(PolicyError) as info:
        _verify(
            vector.evidence, vector.nonce, azure_policy=AzurePolicy.from_dict({**HW, "pcrs": bad})
        )
    assert {v.check for v in info.value.violations} == {"azure.pcr4", "azure.pcr7"}


def test_azure_snp_policy_reuses_snp_rules(azure_vector):
    vector = azure_vector("trustee_snp_genoa_v3")
    policy = AzurePolicy.from_dict(
        {
            "pcrs": {"skip": True},
            "snp": {"minimum_tcb": {"snp": 99}, "allowed_measurements": ["00" * 48]},
        }
    )
    with pytest.raises(PolicyError) as info:
        _verify(vector.evidence, vector.nonce, azure_policy=policy)
    checks = {v.check for v in info.value.violations}
    assert "reported_tcb.snp" in checks and any("measurement" in c for c in checks)


def test_no_azure_table_refuses_azure_evidence(azure_vector):
    vector = azure_vector("trustee_snp_genoa_v3")
    with pytest.raises(PolicyError, match=r"azure\.accept"):
        _verify(vector.evidence, vector.nonce, azure_policy=None)


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"pcrs": {"0": "00" * 32}},
        {"pcrs": {"others": ["00" * 32]}},
        {"pcrs": {"others": {"skip": True}, "24": {"skip": True}}},
        {"pcrs": {"others": {"skip": True}, "3": []}},
        {"pcrs": {"skip": True}, "pcr": {}},
    ],
)
def test_pcr_policy_fails_closed_at_load(table):
    with pytest.raises(UsageError):
        AzurePolicy.from_dict(table)


def test_hcl_builder_round_trips(azure):
    hcl = parse_hcl_report((azure / "trustee_snp_genoa_v3" / "hcl_report.bin").read_bytes())
    rebuilt = build_hcl_report(hcl.hardware_report, hcl.variable_data, header_version=2)
    assert rebuilt == hcl.raw


@pytest.mark.parametrize(
    ("offset", "value", "check"),
    [
        (0x000, 0x41434C48, "hcl.signature"),
        (0x004, 3, "hcl.version"),
        (0x008, 1, "hcl.report_size"),
        (0x010, 1, "hcl.status"),
        (0x018, 1, "hcl.reserved"),
        (0x4C4, 2, "hcl.igvm.version"),
        (0x4C8, 3, "hcl.igvm.report_type"),
        (0x4CC, 9, "hcl.igvm.hash_type"),
        (0x4D0, 5000, "hcl.igvm.variable_data_size"),
        (0xA20, 1, "hcl.reserved"),
    ],
)
def test_hcl_header_fields_strict_fail(azure, offset, value, check):
    hcl = bytearray((azure / "trustee_snp_genoa_v3" / "hcl_report.bin").read_bytes())
    struct.pack_into("<I", hcl, offset, value)
    with pytest.raises(ParseError, match=check.replace(".", r"\.")):
        parse_hcl_report(bytes(hcl))


def test_every_bit_of_quote_and_signature(azure_vector):
    """Exhaustive: each single-bit flip of the quote message or signature is rejected."""
    vector = azure_vector("trustee_snp_milan_v3_ev0")
    parts, _hcl, runtime, _attest = parse_parts(vector.evidence)
    for name, blob in (("message", parts.quote_message), ("signature", parts.quote_signature)):
        for bit in range(len(blob) * 8):
            flipped = bytearray(blob)
            flipped[bit // 8] ^= 1 << (bit % 8)
            message, signature = (
                (bytes(flipped), parts.quote_signature)
                if name == "message"
                else (parts.quote_message, bytes(flipped))
            )
            with pytest.raises(TcmeError):
                attest = parse_attest(message)
                verify_quote_signature(attest, signature, runtime.ak)
                check_nonce(attest, vector.nonce)


def test_every_bit_of_runtime_data(azure_vector):
    """Exhaustive: each single-bit flip of the runtime data breaks the parse or the binding."""
    vector = azure_vector("trustee_snp_genoa_v3")
    hcl = parse_azure_evidence(vector.evidence).hcl_report
    report_data = parse_hcl_report(hcl).hardware_report_data
    start = VARIABLE_DATA_OFFSET
    for bit in range(start * 8, (start + len(parse_hcl_report(hcl).variable_data)) * 8):
        flipped = bytearray(hcl)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(TcmeError):
            check_runtime_data(parse_hcl_report(bytes(flipped)), report_data)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bit=st.integers(min_value=0, max_value=2600 * 8 - 1))
def test_any_hcl_bit_flip_fails_the_whole_pipeline(azure_vector, bit):
    vector = azure_vector("trustee_snp_genoa_v3")
    parts = parse_azure_evidence(vector.evidence)
    flipped = bytearray(parts.hcl_report)
    flipped[bit // 8] ^= 1 << (bit % 8)
    evidence = AzureEvidence(**{**parts.__dict__, "hcl_report": bytes(flipped)}).to_json()
    with pytest.raises(TcmeError):
        _verify(evidence, vector.nonce)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_arbitrary_hcl_bytes_only_parse_errors(data):
    with contextlib.suppress(ParseError):
        parse_hcl_report(b"HCLA" + data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_quote_bytes_only_parse_errors(data):
    with contextlib.suppress(ParseError):
        parse_attest(bytes.fromhex("ff5443478018") + data)


def test_milan_v2_evidence_helper_matches_split_files(azure):
    folder = azure / "trustee_snp_milan_v2"
    parts = parse_azure_evidence(milan_v2_evidence(folder))
    assert parts.quote_message == (folder / "quote_msg.bin").read_bytes()
    assert parts.quote_signature == (folder / "quote_sig.bin").read_bytes()


def test_every_bit_of_the_hcl_report(azure_vector):
    """Exhaustive: each single-bit flip anywhere in a real HCL report is rejected.

    Cheap checks first (layout, runtime data, its hash in REPORT_DATA), the SNP
    signature only for the flips those let through.
    """
    vector = azure_vector("trustee_snp_genoa_v3")
    parts = parse_azure_evidence(vector.evidence)
    options = VerifyOptions(now=AT)
    original = parts.hcl_report
    verify_attestation(
        parse_report(parse_hcl_report(original).hardware_report), parts.vcek, options
    )
    caught = {"parse": 0, "binding": 0, "signature": 0}
    for bit in range(len(original) * 8):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            hcl = parse_hcl_report(bytes(flipped))
            parse_runtime_data(hcl.variable_data)
            report = parse_report(hcl.hardware_report)
        except ParseError:
            caught["parse"] += 1
            continue
        try:
            check_runtime_data(hcl, report.report_data)
        except BindingError:
            caught["binding"] += 1
            continue
        with pytest.raises(SignatureError):
            verify_attestation(report, parts.vcek, options)
        caught["signature"] += 1
    assert sum(caught.values()) == len(original) * 8
    assert min(caught.values()) > 0


def test_vm_configuration_policy(azure_vector):
    vector = azure_vector("trustee_snp_milan_v3_ev0")  # secure-boot true, console-enabled true
    good = {**HW, "pcrs": {"skip": True}, "vm_configuration": {"secure-boot": True}}
    _verify(vector.evidence, vector.nonce, azure_policy=AzurePolicy.from_dict(good))
    bad = {**HW, "pcrs": {"skip": True}, "vm_configuration": {"console-enabled": False}}
    with pytest.raises(PolicyError) as info:
        _verify(vector.evidence, vector.nonce, azure_policy=AzurePolicy.from_dict(bad))
    assert info.value.check == "azure.vm_configuration.console-enabled"
    with pytest.raises(UsageError):
        AzurePolicy.from_dict({"pcrs": {"skip": True}, "vm_configuration": {"x": 1}})


def test_paravisor_identity_pinned_or_skipped_at_load():
    from attestation.policy import Policy as PartyEvidencePolicy

    with pytest.raises(UsageError) as info:
        PartyEvidencePolicy.from_dict(
            {"accept": ["az-snp-vtpm"], "azure": {"pcrs": {"skip": True}}}
        )
    assert info.value.check == "policy.azure.snp"
    with pytest.raises(UsageError) as info:
        AzurePolicy.from_dict({"pcrs": {"skip": True}, "snp": {"minimum_tcb": {"snpp": 1}}})
    assert info.value.check.startswith("policy.azure.snp")
    policy = AzurePolicy.from_dict({**HW, "pcrs": {"skip": True}})
    assert policy.skipped() == ["pcrs", "snp.allowed_measurements"]


def test_evidence_whose_hardware_has_no_table_fail(azure_vector):
    vector = azure_vector("trustee_snp_genoa_v3")
    only_tdx = AzurePolicy.from_dict(
        {
            "pcrs": {"skip": True},
            "tdx": {k: {"skip": True} for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2")},
        }
    )
    with pytest.raises(PolicyError) as info:
        _verify(vector.evidence, vector.nonce, azure_policy=only_tdx)
    assert info.value.check == "azure.snp"
