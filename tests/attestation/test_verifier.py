"""attestation.verifier: the whole pipeline (parse -> verify -> validate -> bind) on real
and simulated SEV-SNP evidence, and evidence-type detection."""

from __future__ import annotations

import base64
import json

import pytest

from attestation.errors import BindingError, ParseError, PolicyError, SignatureError, UsageError
from attestation.policy import SKIP, Policy, SnpPolicy
from attestation.snp.abi import AttestationReport
from attestation.tee import Tee
from attestation.verifier import SnpInputs, detect_evidence_type, verify_evidence


def _snp_policy(**snp) -> Policy:
    """SEV-SNP only, measurement skipped explicitly (the vectors come from many guests)."""
    return Policy(
        accept=(Tee.SEV_SNP,), tables={"snp": SnpPolicy(allowed_measurements=SKIP, **snp)}
    )


PERMISSIVE = _snp_policy(allow_debug=True)  # gosevguest's report allows debug


def test_every_valid_vector_passes_the_pipeline(snp_vector):
    result = verify_evidence(
        snp_vector.report,
        policy=PERMISSIVE,
        at=snp_vector.at,
        inputs=[SnpInputs(certs=snp_vector.certs)],
    )
    assert result.tee == "sev-snp"
    assert result.simulated is False
    assert result.product == snp_vector.product
    assert result.signing_key == snp_vector.signing_key
    assert isinstance(result.report, AttestationReport)
    assert result.report_data == result.report.report_data and len(result.report_data) == 64
    assert result.measurement == result.report.measurement and len(result.measurement) == 48
    assert result.tcb == result.report.reported_tcb.components()
    summary = result.summary()
    json.dumps(summary)  # JSON-friendly
    assert summary["simulated"] is False and "SIMULATED" not in summary["verdict"]


def test_default_policy_rejects_the_debug_vector(named_vector):
    vector = named_vector("gosevguest_milan_v2")  # policy 0xB0000: DEBUG set
    with pytest.raises(PolicyError) as err:
        verify_evidence(
            vector.report,
            policy=Policy.unsafe_authenticity_only(),
            at=vector.at,
            inputs=[SnpInputs(certs=vector.certs)],
        )
    assert [v.check for v in err.value.violations] == ["policy.debug"]


def test_policy_tcb_rejection_names_the_check(named_vector):
    vector = named_vector("gosevguest_milan_v2")  # REPORTED_TCB snp = 5
    policy = _snp_policy(allow_debug=True, minimum_tcb={"snp": 8})
    with pytest.raises(PolicyError) as err:
        verify_evidence(
            vector.report, policy=policy, at=vector.at, inputs=[SnpInputs(certs=vector.certs)]
        )
    assert err.value.message() == "reported_tcb.snp: 5 < required 8 (expected >= 8, got 5)"


def test_binding(named_vector):
    vector = named_vector("ms_milan_v3")
    report_data = vector.report[0x50:0x90]
    verify_evidence(
        vector.report,
        policy=Policy.unsafe_authenticity_only(),
        at=vector.at,
        expected_report_data=report_data,
        inputs=[SnpInputs(certs=vector.certs)],
    )
    wrong = bytes([report_data[0] ^ 1]) + report_data[1:]
    with pytest.raises(BindingError) as err:
        verify_evidence(
            vector.report,
            policy=Policy.unsafe_authenticity_only(),
            at=vector.at,
            expected_report_data=wrong,
            inputs=[SnpInputs(certs=vector.certs)],
        )
    assert err.value.check == "report_data"
    assert err.value.expected == wrong and err.value.actual == report_data


def test_text_and_hcl_evidence(vectors, named_vector):
    vector = named_vector("azure_genoa_v3")
    hcl = (vector.folder / "hcl_report.bin").read_bytes()
    for evidence in (hcl, vector.report.hex().encode(), base64.b64encode(vector.report)):
        result = verify_evidence(
            evidence,
            policy=Policy.unsafe_authenticity_only(),
            at=vector.at,
            inputs=[SnpInputs(certs=vector.certs)],
        )
        assert result.product == "Genoa"


def test_one_flipped_report_data_bit_fail(named_vector):
    vector = named_vector("ms_turin_v5")
    bad = bytearray(vector.report)
    bad[0x50] ^= 0x01
    with pytest.raises(SignatureError, match=r"report\.signature"):
        verify_evidence(
            bytes(bad),
            policy=Policy.unsafe_authenticity_only(),
            at=vector.at,
            inputs=[SnpInputs(certs=vector.certs)],
        )


def test_missing_certs_is_usage_error(named_vector):
    with pytest.raises(UsageError, match="certs"):
        verify_evidence(
            named_vector("ms_milan_v3").report,
            policy=Policy.unsafe_authenticity_only(),
            inputs=[SnpInputs(certs=None)],
        )


def test_detect_evidence_type(vectors, named_vector):
    report = named_vector("ms_milan_v3").report
    assert detect_evidence_type(report) == "sev-snp"
    assert detect_evidence_type(report.hex().encode()) == "sev-snp"
    assert detect_evidence_type(base64.b64encode(report)) == "sev-snp"
    assert (
        detect_evidence_type((vectors / "snp/azure_genoa_v3/hcl_report.bin").read_bytes())
        == "sev-snp"
    )
    quote = (vectors / "tdx/gotdxguest_v5/quote.bin").read_bytes()
    assert detect_evidence_type(quote) == "tdx"
    assert detect_evidence_type(base64.b64encode(quote)) == "tdx"
    for junk in (b"", b"\x00" * 100, b"hello world", b"\x04\x00\x02\x00" + bytes(1000)):
        with pytest.raises(ParseError) as err:
            detect_evidence_type(junk)
        assert err.value.check in ("evidence.empty", "evidence.type")
    # Report-sized zeros look like SEV-SNP; the parser then names what is wrong.
    assert detect_evidence_type(bytes(1184)) == "sev-snp"
    with pytest.raises(ParseError, match=r"report\.version"):
        verify_evidence(
            bytes(1184), policy=Policy.unsafe_authenticity_only(), inputs=[SnpInputs(certs=b"x")]
        )


def test_bad_policy_argument_fail(named_vector):
    with pytest.raises(UsageError, match="policy"):
        verify_evidence(
            named_vector("ms_milan_v3").report, policy=None, inputs=[SnpInputs(certs=b"x")]
        )  # type: ignore[arg-type]
