"""Is this TPM quote signed by the AK, over these PCRs, for this qualifying data?

Three separately testable checks on a parsed ``TPMS_ATTEST``:

* ``verify_quote_signature``: the AK signed exactly the quote message. The
  signature is either the raw RSA signature (what Azure's vTPM AK makes and
  the CoCo evidence carries: RSASSA-PKCS1-v1_5 with SHA-256) or a whole
  ``TPMT_SIGNATURE``, which names the AK's scheme (RSASSA or RSAPSS, salt =
  digest length as the TPM reference code uses) and hash; the two forms have
  different lengths, so there is no ambiguity.
* ``verify_pcr_digest``: pcrDigest is the signature hash over the selected PCR
  values, concatenated in index order (Part 3, TPM2_Quote).
* ``check_qualifying_data``: extraData equals what the verifier expects
  (docs/protocol.md "Azure vTPM binding").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from attestation.azure.tpm import (
    HASH_ALGS,
    TPM_ALG_RSAPSS,
    TPM_ALG_RSASSA,
    TPM_ALG_SHA256,
    Attest,
    RsaSignature,
    parse_rsa_signature,
)
from attestation.errors import BindingError, ParseError, SignatureError

PCR_COUNT = 24
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def decode_signature(signature: bytes, ak: rsa.RSAPublicKey) -> RsaSignature:
    """The quote signature as an ``RsaSignature``: raw (key-size bytes) or a TPMT_SIGNATURE."""
    size = (ak.key_size + 7) // 8
    if len(signature) == size:
        return RsaSignature(scheme=TPM_ALG_RSASSA, hash_alg=TPM_ALG_SHA256, signature=signature)
    sig = parse_rsa_signature(signature)
    if len(sig.signature) != size:
        raise ParseError(
            "quote.signature.size",
            "signature size does not match the AK",
            expected=size,
            actual=len(sig.signature),
        )
    return sig


def verify_quote_signature(attest: Attest, signature: bytes, ak: rsa.RSAPublicKey) -> RsaSignature:
    """The AK signed ``attest.raw``; ``SignatureError`` (``azure.quote.signature``) if not."""
    sig = decode_signature(signature, ak)
    algorithm = _HASHES[sig.hash_name]()
    pad: padding.AsymmetricPadding
    if sig.scheme == TPM_ALG_RSAPSS:
        pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
    else:
        pad = padding.PKCS1v15()
    try:
        ak.verify(sig.signature, attest.raw, pad, algorithm)
    except InvalidSignature as err:
        raise SignatureError(
            "azure.quote.signature",
            f"the quote is not signed by the HCL report's AK ({sig.scheme_name}, {sig.hash_name})",
            expected="a valid AK signature",
            actual="invalid",
        ) from err
    return sig


def selected_pcrs(attest: Attest, pcrs: Sequence[bytes], hash_alg: int = TPM_ALG_SHA256) -> bytes:
    """The selected PCR values concatenated in index order (``pcrs``: the bank, by index)."""
    if len(attest.pcr_selections) != 1 or attest.pcr_selections[0].hash_alg != hash_alg:
        banks = [s.hash_name for s in attest.pcr_selections]
        raise ParseError(
            "azure.quote.pcr_select",
            "the quote must select exactly one PCR bank, the one the PCR values are from",
            expected=[HASH_ALGS[hash_alg][0]],
            actual=banks,
        )
    size = HASH_ALGS[hash_alg][1]
    out = []
    for index in attest.pcr_selections[0].pcrs:
        if index >= len(pcrs):
            raise ParseError(
                "azure.pcrs.missing",
                f"the quote selects PCR {index}, which the evidence does not carry",
                expected=f"> {index} PCR values",
                actual=len(pcrs),
            )
        if len(pcrs[index]) != size:
            raise ParseError(
                f"azure.pcrs[{index}].size",
                "wrong PCR size",
                expected=size,
                actual=len(pcrs[index]),
            )
        out.append(pcrs[index])
    return b"".join(out)


def verify_pcr_digest(attest: Attest, pcrs: Sequence[bytes], sig: RsaSignature) -> None:
    """pcrDigest == H(selected PCR values); ``SignatureError`` (``azure.quote.pcr_digest``)."""
    digest = hashlib.new(sig.hash_name, selected_pcrs(attest, pcrs)).digest()
    if not hmac.compare_digest(digest, attest.pcr_digest):
        raise SignatureError(
            "azure.quote.pcr_digest",
            "the PCR values are not the ones the quote signed",
            expected=attest.pcr_digest,
            actual=digest,
        )


def qualifying_data_for(report_data: bytes, max_size: int = 64) -> bytes:
    """The quote qualifying data for tcme's 64-byte binding: itself, or its SHA-256.

    A vTPM whose TPM2B_DATA holds fewer than 64 bytes (no SHA-512 bank) gets
    SHA-256(REPORT_DATA) instead; the two forms differ in length, so a verifier
    knows which rule applies (docs/protocol.md "Azure vTPM binding").
    """
    return report_data if len(report_data) <= max_size else hashlib.sha256(report_data).digest()


def check_qualifying_data(attest: Attest, expected_report_data: bytes) -> None:
    """extraData is tcme's binding (64 bytes) or its SHA-256 (32); ``BindingError`` if not."""
    extra = attest.extra_data
    expected = bytes(expected_report_data)
    if len(extra) == len(expected):
        ok = hmac.compare_digest(extra, expected)
    elif len(extra) == hashlib.sha256().digest_size:
        expected = hashlib.sha256(expected).digest()
        ok = hmac.compare_digest(extra, expected)
    else:
        ok = False
    if not ok:
        raise BindingError(
            "azure.quote.extra_data",
            "the quote's qualifying data is not this party's binding (claims, contract, "
            "session, nonce)",
            expected=expected,
            actual=extra,
        )


def check_nonce(attest: Attest, nonce: bytes) -> None:
    """extraData equals ``nonce`` exactly (CoCo/Trustee semantics, ``--nonce``)."""
    if not hmac.compare_digest(attest.extra_data, bytes(nonce)):
        raise BindingError(
            "azure.quote.nonce",
            "the quote's qualifying data is not the expected nonce",
            expected=bytes(nonce),
            actual=attest.extra_data,
        )
