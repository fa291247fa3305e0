"""What do the bytes say? Pure, strict parsers for the TPM 2.0 structures a quote uses.

Transcribes TCG "TPM 2.0 Library, Part 2: Structures" (all integers big-endian):

* 10.12.12 ``TPMS_ATTEST``: magic ``TPM_GENERATED_VALUE`` (0xff544347), type
  (``TPM_ST_ATTEST_QUOTE`` = 0x8018), qualifiedSigner (``TPM2B_NAME``),
  extraData (``TPM2B_DATA``: the verifier's qualifying data), clockInfo
  (``TPMS_CLOCK_INFO``: clock u64, resetCount u32, restartCount u32, safe u8),
  firmwareVersion u64, then ``TPMS_QUOTE_INFO``: pcrSelect
  (``TPML_PCR_SELECTION``) and pcrDigest (``TPM2B_DIGEST``);
* 11.3.4 ``TPMT_SIGNATURE`` for RSA: sigAlg (RSASSA 0x0014 or RSAPSS 0x0016),
  hash, sig (``TPM2B_PUBLIC_KEY_RSA``).

Every size field is bounded by the structure's maximum, every byte is consumed
(no trailing data), and reserved values are refused. Nothing here verifies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from attestation.binary import ByteReader
from attestation.errors import ParseError

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018

TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016

# TPM_ALG_ID -> (hashlib name, digest size), Part 2 6.3 "TPM_ALG_ID".
HASH_ALGS: dict[int, tuple[str, int]] = {
    TPM_ALG_SHA1: ("sha1", 20),
    TPM_ALG_SHA256: ("sha256", 32),
    TPM_ALG_SHA384: ("sha384", 48),
    TPM_ALG_SHA512: ("sha512", 64),
}
SIGNATURE_SCHEMES = {TPM_ALG_RSASSA: "RSASSA-PKCS1-v1_5", TPM_ALG_RSAPSS: "RSASSA-PSS"}

MAX_EXTRA_DATA = 64  # TPM2B_DATA: sizeof(TPMT_HA) less its algorithm id, SHA-512 at most
MAX_NAME = 2 + 64  # TPM2B_NAME: nameAlg + the largest digest
MAX_PCR_SELECTIONS = len(HASH_ALGS)  # one per bank
PCR_SELECT_MIN = 3  # Part 2 10.6.1: at least 24 PCRs' worth of bitmap
PCR_SELECT_MAX = 4
MAX_RSA_SIGNATURE = 512  # 4096-bit keys

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_CLOCK_INFO = struct.Struct(">QIIB")
_U64 = struct.Struct(">Q")


@dataclass(frozen=True)
class PcrSelection:
    """One bank's selection: the hash algorithm and the selected PCR indices, ascending."""

    hash_alg: int
    pcrs: tuple[int, ...]

    @property
    def hash_name(self) -> str:
        """The bank's hashlib name."""
        return HASH_ALGS[self.hash_alg][0]


@dataclass(frozen=True)
class Attest:
    """A parsed ``TPMS_ATTEST`` of type quote; ``raw`` is exactly the signed bytes."""

    qualified_signer: bytes  # TPM2B_NAME contents: nameAlg (2 bytes) || digest
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    pcr_selections: tuple[PcrSelection, ...]
    pcr_digest: bytes
    raw: bytes

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly fields for ``tcme evidence show``."""
        return {
            "type": "TPM_ST_ATTEST_QUOTE",
            "qualified_signer": self.qualified_signer.hex(),
            "extra_data": self.extra_data.hex(),
            "clock": self.clock,
            "reset_count": self.reset_count,
            "restart_count": self.restart_count,
            "safe": self.safe,
            "firmware_version": f"0x{self.firmware_version:016x}",
            "pcr_selection": {s.hash_name: list(s.pcrs) for s in self.pcr_selections},
            "pcr_digest": self.pcr_digest.hex(),
        }


@dataclass(frozen=True)
class RsaSignature:
    """A ``TPMT_SIGNATURE`` with an RSA scheme."""

    scheme: int  # TPM_ALG_RSASSA or TPM_ALG_RSAPSS
    hash_alg: int
    signature: bytes

    @property
    def scheme_name(self) -> str:
        """ "RSASSA-PKCS1-v1_5" or "RSASSA-PSS"."""
        return SIGNATURE_SCHEMES[self.scheme]

    @property
    def hash_name(self) -> str:
        """The signature's hashlib name."""
        return HASH_ALGS[self.hash_alg][0]


def parse_attest(data: bytes) -> Attest:
    """Parse a quote's ``TPMS_ATTEST`` (the message the AK signs); strict, see module doc."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("quote.type", "quote must be bytes", actual=type(data).__name__)
    r = ByteReader(bytes(data), "quote")
    magic = r.u32be("magic")
    if magic != TPM_GENERATED_VALUE:
        raise ParseError(
            "quote.magic",
            "not made by a TPM (TPM_GENERATED_VALUE)",
            expected=f"0x{TPM_GENERATED_VALUE:08x}",
            actual=f"0x{magic:08x}",
        )
    kind = r.u16be("type")
    if kind != TPM_ST_ATTEST_QUOTE:
        raise ParseError(
            "quote.attest_type",
            "not a quote",
            expected=f"0x{TPM_ST_ATTEST_QUOTE:04x} (TPM_ST_ATTEST_QUOTE)",
            actual=f"0x{kind:04x}",
        )
    signer = r.tpm2b("qualified_signer", MAX_NAME)
    _check_name(signer)
    extra = r.tpm2b("extra_data", MAX_EXTRA_DATA)
    clock, reset_count, restart_count, safe = r.unpack(_CLOCK_INFO, "clock_info")
    if safe not in (0, 1):
        raise ParseError(
            "quote.clock_info.safe", "not a TPMI_YES_NO", expected="0 or 1", actual=safe
        )
    (firmware,) = r.unpack(_U64, "firmware_version")
    selections = _pcr_selections(r)
    digest = r.tpm2b("pcr_digest", max(size for _, size in HASH_ALGS.values()))
    r.done()
    return Attest(
        qualified_signer=signer,
        extra_data=extra,
        clock=clock,
        reset_count=reset_count,
        restart_count=restart_count,
        safe=bool(safe),
        firmware_version=firmware,
        pcr_selections=selections,
        pcr_digest=digest,
        raw=bytes(data),
    )


def parse_rsa_signature(data: bytes) -> RsaSignature:
    """Parse a ``TPMT_SIGNATURE`` whose scheme is RSASSA or RSAPSS; strict."""
    r = ByteReader(bytes(data), "signature")
    scheme = r.u16be("sig_alg")
    if scheme not in SIGNATURE_SCHEMES:
        raise ParseError(
            "signature.sig_alg",
            "not an RSA signature scheme",
            expected="0x0014 (RSASSA) or 0x0016 (RSAPSS)",
            actual=f"0x{scheme:04x}",
        )
    hash_alg = r.u16be("hash")
    if hash_alg not in HASH_ALGS or hash_alg == TPM_ALG_SHA1:
        raise ParseError(
            "signature.hash",
            "unsupported signature hash",
            expected="SHA-256, SHA-384 or SHA-512",
            actual=f"0x{hash_alg:04x}",
        )
    sig = r.tpm2b("sig", MAX_RSA_SIGNATURE)
    r.done()
    return RsaSignature(scheme=scheme, hash_alg=hash_alg, signature=sig)


def encode_rsa_signature(sig: RsaSignature) -> bytes:
    """The ``TPMT_SIGNATURE`` bytes of ``sig`` (the inverse of ``parse_rsa_signature``)."""
    return (
        _U16.pack(sig.scheme) + _U16.pack(sig.hash_alg) + _U16.pack(len(sig.signature))
    ) + sig.signature


def _check_name(name: bytes) -> None:
    if len(name) < 2:
        raise ParseError(
            "quote.qualified_signer", "name too short", expected=">= 2", actual=len(name)
        )
    (alg,) = _U16.unpack_from(name, 0)
    size = HASH_ALGS.get(alg, (None, None))[1]
    if size is None or len(name) != 2 + size:
        raise ParseError(
            "quote.qualified_signer",
            "not a TPM name (nameAlg followed by its digest)",
            expected="nameAlg + digest of that algorithm's size",
            actual=name.hex(),
        )


def _pcr_selections(r: ByteReader) -> tuple[PcrSelection, ...]:
    count = r.u32be("pcr_select.count")
    if count > MAX_PCR_SELECTIONS:
        raise ParseError(
            "quote.pcr_select.count",
            "too many banks",
            expected=f"<= {MAX_PCR_SELECTIONS}",
            actual=count,
        )
    out: list[PcrSelection] = []
    for i in range(count):
        hash_alg = r.u16be(f"pcr_select[{i}].hash")
        if hash_alg not in HASH_ALGS:
            raise ParseError(
                f"quote.pcr_select[{i}].hash", "unknown PCR bank", actual=f"0x{hash_alg:04x}"
            )
        if any(s.hash_alg == hash_alg for s in out):
            raise ParseError(f"quote.pcr_select[{i}].hash", "bank selected twice", actual=hash_alg)
        size = r.take(1, f"pcr_select[{i}].size")[0]
        if not PCR_SELECT_MIN <= size <= PCR_SELECT_MAX:
            raise ParseError(
                f"quote.pcr_select[{i}].size",
                "sizeofSelect out of range",
                expected=f"{PCR_SELECT_MIN}..{PCR_SELECT_MAX}",
                actual=size,
            )
        bitmap = r.take(size, f"pcr_select[{i}].bitmap")
        pcrs = tuple(n for n in range(8 * size) if bitmap[n // 8] >> (n % 8) & 1)
        out.append(PcrSelection(hash_alg=hash_alg, pcrs=pcrs))
    return tuple(out)


def encode_pcr_selection(hash_alg: int, pcrs: range | tuple[int, ...]) -> bytes:
    """A ``TPML_PCR_SELECTION`` with one bank (what quote and PCR_Read commands take)."""
    bitmap = bytearray(PCR_SELECT_MIN)
    for n in pcrs:
        bitmap[n // 8] |= 1 << (n % 8)
    return _U32.pack(1) + _U16.pack(hash_alg) + bytes([len(bitmap)]) + bytes(bitmap)
