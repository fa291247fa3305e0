"""What do the bytes of a TDX quote say? A pure, bounds-checked parser.

Transcribes the quote layout of Intel's *TDX DCAP Quoting Library API*
(Appendix A, "Quote Format"): quote versions 4 and 5, TD report 1.0 and 1.5
bodies, ECDSA-256 (P-256) attestation keys, QE Report Certification Data
(type 6) wrapping a PEM PCK certificate chain (type 5). Table names in the
comments below are that appendix's.

Strict everywhere except one place: bytes after the end of the Quote
Signature Data are tolerated and kept (``Quote.trailing``), because real
quotes carry them (zero padding from the quote buffer, or test markers).
Everything inside the signature data must add up exactly; reserved bytes of
the QE report must be zero; the PEM chain must be exactly three well-formed
certificates.

Nothing here verifies a signature: see ``attestation.tdx.verify``.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from attestation.errors import ParseError

# --- "Quote Header" (48 bytes) -------------------------------------------------------------
HEADER_SIZE = 0x30
HEADER_VERSION = 0x00  # u16
HEADER_ATTESTATION_KEY_TYPE = 0x02  # u16
HEADER_TEE_TYPE = 0x04  # u32
# Bytes 8..12 are "RESERVED" in the TDX tables and QE_SVN/PCE_SVN in SGX quotes; named as
# go-tdx-guest and dcap-qvl name them, and not required to be zero (neither checks them).
HEADER_QE_SVN = 0x08  # u16
HEADER_PCE_SVN = 0x0A  # u16
HEADER_QE_VENDOR_ID = 0x0C  # 16 bytes
HEADER_USER_DATA = 0x1C  # 20 bytes
QE_VENDOR_ID_SIZE = 16
USER_DATA_SIZE = 20

SUPPORTED_VERSIONS = (4, 5)
ATTESTATION_KEY_TYPE_ECDSA_P256 = 2  # "ECDSA-256-with-P-256 curve"
TEE_TYPE_TDX = 0x00000081
# Intel's QE vendor ID, 939A7233-F79C-4CA9-940A-0DB3957F0607.
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

# --- "Quote Body" in v5: a type/size descriptor precedes the body ----------------------------
V5_BODY_TYPE = 0x30  # u16, at the end of the header
V5_BODY_SIZE = 0x32  # u32
V5_BODY_START = 0x36
BODY_TYPE_TD_REPORT_10 = 2  # TDX 1.0 TD Quote Body
BODY_TYPE_TD_REPORT_15 = 3  # TDX 1.5 TD Quote Body

# --- "TD Quote Body" (TD report 1.0: 584 bytes; 1.5 appends 64) --------------------------------
TD_REPORT_10_SIZE = 0x248
TD_REPORT_15_SIZE = 0x288
BODY_TEE_TCB_SVN = 0x000  # 16
BODY_MR_SEAM = 0x010  # 48
BODY_MR_SIGNER_SEAM = 0x040  # 48
BODY_SEAM_ATTRIBUTES = 0x070  # 8
BODY_TD_ATTRIBUTES = 0x078  # 8
BODY_XFAM = 0x080  # 8
BODY_MR_TD = 0x088  # 48
BODY_MR_CONFIG_ID = 0x0B8  # 48
BODY_MR_OWNER = 0x0E8  # 48
BODY_MR_OWNER_CONFIG = 0x118  # 48
BODY_RTMR0 = 0x148  # 4 x 48
BODY_REPORT_DATA = 0x208  # 64
BODY_TEE_TCB_SVN_2 = 0x248  # 16, TD report 1.5 only
BODY_MR_SERVICE_TD = 0x258  # 48, TD report 1.5 only
SVN_SIZE = 16
MEASUREMENT_SIZE = 48
ATTRIBUTES_SIZE = 8
REPORT_DATA_SIZE = 64
RTMR_COUNT = 4

# TDATTRIBUTES bit 0 (TDX Module ABI, "TDATTRIBUTES"): the TD is debuggable; its memory and
# CPU state are readable by the host, so nothing it attests to can be trusted.
TD_ATTRIBUTES_DEBUG_BIT = 0

# --- "Quote Signature Data" (ECDSA 256-bit Quote Signature Data Structure) --------------------
SIGNATURE_SIZE = 64  # r || s, big-endian P-256 scalars
ATTESTATION_KEY_SIZE = 64  # x || y of the P-256 attestation public key
CERT_DATA_HEADER_SIZE = 6  # "Certification Data": type u16, size u32
CERT_DATA_TYPE_PCK_CHAIN = 5  # "Concatenated PCK Cert Chain" (PEM)
CERT_DATA_TYPE_QE_REPORT = 6  # "QE Report Certification Data"

# --- "QE Report Certification Data" ----------------------------------------------------------
ENCLAVE_REPORT_SIZE = 0x180  # SGX REPORT body, "Enclave Report Body"
QE_AUTH_DATA_SIZE_FIELD = 2  # u16

# --- "Enclave Report Body" (SGX REPORTBODY, 384 bytes) ----------------------------------------
QE_CPU_SVN = 0x000  # 16
QE_MISC_SELECT = 0x010  # u32
QE_RESERVED1 = (0x014, 0x030)
QE_ATTRIBUTES = 0x030  # 16
QE_MR_ENCLAVE = 0x040  # 32
QE_RESERVED2 = (0x060, 0x080)
QE_MR_SIGNER = 0x080  # 32
QE_RESERVED3 = (0x0A0, 0x100)
QE_ISV_PROD_ID = 0x100  # u16
QE_ISV_SVN = 0x102  # u16
QE_RESERVED4 = (0x104, 0x140)
QE_REPORT_DATA = 0x140  # 64

PCK_CHAIN_LENGTH = 3  # PCK leaf, Platform/Processor CA, Intel SGX Root CA

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<HHIHH16s20s")
_V5_DESCRIPTOR = struct.Struct("<HI")
_CERT_HEADER = struct.Struct("<HI")
# "TD Quote Body" fields in order (TEE_TCB_SVN .. REPORTDATA), and the TD report 1.5 tail.
_TD_REPORT_10 = struct.Struct("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s")
_TD_REPORT_15_TAIL = struct.Struct("<16s48s")
# "Enclave Report Body": CPUSVN, MISCSELECT, reserved, ATTRIBUTES, MRENCLAVE, reserved,
# MRSIGNER, reserved, ISVPRODID, ISVSVN, reserved, REPORTDATA.
_ENCLAVE_REPORT = struct.Struct("<16sI28s16s32s32s32s96sHH60s64s")
_QE_RESERVED_TOTAL = 28 + 32 + 96 + 60

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_FINISH = b"-----END CERTIFICATE-----"
_LINE_BREAKS = b"\r\n"


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte "Quote Header"."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class TdQuoteBody:
    """The "TD Quote Body": the TD report (1.0, or 1.5 with the two extra fields)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn_2: bytes | None = None  # TD report 1.5 only
    mr_service_td: bytes | None = None  # TD report 1.5 only

    @property
    def td_report_version(self) -> str:
        """ "1.0" or "1.5"."""
        return "1.0" if self.tee_tcb_svn_2 is None else "1.5"

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG: the host can read and change this TD."""
        return bool(self.td_attributes[0] >> TD_ATTRIBUTES_DEBUG_BIT & 1)


@dataclass(frozen=True)
class EnclaveReport:
    """The Quoting Enclave's SGX report ("Enclave Report Body")."""

    cpu_svn: bytes
    misc_select: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes


@dataclass(frozen=True)
class QeReportCertificationData:
    """Certification data type 6: the QE report, its PCK signature, and the PCK chain."""

    qe_report: EnclaveReport
    qe_report_raw: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_cert_chain_pem: bytes  # the raw type-5 data, trailing NULs included
    pck_cert_chain: tuple[bytes, ...]  # DER, leaf first


@dataclass(frozen=True)
class QuoteSignatureData:
    """ "Quote Signature Data": signature over header||body, the key, its certification."""

    signature: bytes
    attestation_key: bytes
    certification: QeReportCertificationData


@dataclass(frozen=True)
class Quote:
    """A parsed TDX quote (v4 or v5). ``raw`` is the whole input, trailing bytes included."""

    header: QuoteHeader
    body_type: int  # BODY_TYPE_TD_REPORT_10 or _15 (v4 quotes always carry a 1.0 body)
    body: TdQuoteBody
    signature_data: QuoteSignatureData
    signed_size: int  # bytes [0, signed_size) are covered by the quote signature
    signature_data_size: int
    raw: bytes
    trailing: bytes  # tolerated bytes after the signature data

    @property
    def version(self) -> int:
        """Quote format version, 4 or 5."""
        return self.header.version

    @property
    def signed_data(self) -> bytes:
        """The bytes the attestation key signed."""
        return self.raw[: self.signed_size]


def parse_quote(data: bytes) -> Quote:
    """Parse a TDX quote; raise ``ParseError`` naming the field on any malformation."""
    data = bytes(data)
    size = len(data)
    if size < HEADER_SIZE:
        raise ParseError(
            "quote.size", "shorter than a quote header", expected=f">= {HEADER_SIZE}", actual=size
        )
    header = _parse_header(data)

    if header.version == 4:
        body_type, body_start, body_size = BODY_TYPE_TD_REPORT_10, HEADER_SIZE, TD_REPORT_10_SIZE
    else:
        _need(data, V5_BODY_START, "quote.body_descriptor")
        body_type, body_size = _V5_DESCRIPTOR.unpack_from(data, V5_BODY_TYPE)
        expected_size = _BODY_SIZES.get(body_type)
        if expected_size is None:
            raise ParseError(
                "quote.body_type",
                "unsupported v5 body type",
                expected="2 (TD report 1.0) or 3 (TD report 1.5)",
                actual=body_type,
            )
        if body_size != expected_size:
            raise ParseError(
                "quote.body_size",
                f"wrong size for body type {body_type}",
                expected=expected_size,
                actual=body_size,
            )
        body_start = V5_BODY_START
    signed_size = body_start + body_size
    _need(data, signed_size + 4, "quote.body")
    body = _parse_body(data, body_start, body_type)

    (sig_size,) = _U32.unpack_from(data, signed_size)
    sig_start = signed_size + 4
    sig_end = sig_start + sig_size
    if sig_end > size:
        raise ParseError(
            "quote.signature_data_size",
            "signature data runs past the end of the quote",
            expected=f"<= {size - sig_start}",
            actual=sig_size,
        )
    signature_data = _parse_signature_data(data, sig_start, sig_end)
    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signature_data=signature_data,
        signed_size=signed_size,
        signature_data_size=sig_size,
        raw=data,
        trailing=data[sig_end:],
    )


def quote_to_bytes(quote: Quote, *, trailing: bool = True) -> bytes:
    """Re-encode a parsed quote field by field (the inverse of ``parse_quote``)."""
    h = quote.header
    out = bytearray(
        _HEADER.pack(
            h.version,
            h.attestation_key_type,
            h.tee_type,
            h.qe_svn,
            h.pce_svn,
            h.qe_vendor_id,
            h.user_data,
        )
    )
    body = _body_to_bytes(quote.body)
    if h.version == 5:
        out += _V5_DESCRIPTOR.pack(quote.body_type, len(body))
    out += body
    sig = quote.signature_data
    cert = sig.certification
    inner = (
        cert.qe_report_raw
        + cert.qe_report_signature
        + _U16.pack(len(cert.qe_auth_data))
        + cert.qe_auth_data
        + _CERT_HEADER.pack(CERT_DATA_TYPE_PCK_CHAIN, len(cert.pck_cert_chain_pem))
        + cert.pck_cert_chain_pem
    )
    sig_bytes = (
        sig.signature
        + sig.attestation_key
        + _CERT_HEADER.pack(CERT_DATA_TYPE_QE_REPORT, len(inner))
        + inner
    )
    out += _U32.pack(len(sig_bytes)) + sig_bytes
    if trailing:
        out += quote.trailing
    return bytes(out)


_BODY_SIZES = {BODY_TYPE_TD_REPORT_10: TD_REPORT_10_SIZE, BODY_TYPE_TD_REPORT_15: TD_REPORT_15_SIZE}


def _need(data: bytes, end: int, check: str) -> None:
    if len(data) < end:
        raise ParseError(check, "quote is truncated", expected=f">= {end} bytes", actual=len(data))


def _parse_header(data: bytes) -> QuoteHeader:
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data = _HEADER.unpack_from(data, 0)
    if version not in SUPPORTED_VERSIONS:
        raise ParseError(
            "quote.version", "unsupported quote version", expected="4 or 5", actual=version
        )
    if tee_type != TEE_TYPE_TDX:
        raise ParseError(
            "quote.tee_type", "not a TDX quote", expected=hex(TEE_TYPE_TDX), actual=hex(tee_type)
        )
    if key_type != ATTESTATION_KEY_TYPE_ECDSA_P256:
        raise ParseError(
            "quote.attestation_key_type",
            "only ECDSA-256-with-P-256 is defined for TDX",
            expected=ATTESTATION_KEY_TYPE_ECDSA_P256,
            actual=key_type,
        )
    if vendor != INTEL_QE_VENDOR_ID:
        raise ParseError(
            "quote.qe_vendor_id",
            "not Intel's quoting enclave",
            expected=INTEL_QE_VENDOR_ID,
            actual=vendor,
        )
    return QuoteHeader(version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data)


def _parse_body(data: bytes, start: int, body_type: int) -> TdQuoteBody:
    # One unpack in table order (offsets BODY_* above); TD report 1.5 appends two fields.
    (
        tee_tcb_svn, mr_seam, mr_signer_seam, seam_attributes, td_attributes, xfam, mr_td,
        mr_config_id, mr_owner, mr_owner_config, rtmr0, rtmr1, rtmr2, rtmr3, report_data,
    ) = _TD_REPORT_10.unpack_from(data, start)  # fmt: skip
    tee_tcb_svn_2 = mr_service_td = None
    if body_type == BODY_TYPE_TD_REPORT_15:
        tee_tcb_svn_2, mr_service_td = _TD_REPORT_15_TAIL.unpack_from(
            data, start + BODY_TEE_TCB_SVN_2
        )
    return TdQuoteBody(
        tee_tcb_svn,
        mr_seam,
        mr_signer_seam,
        seam_attributes,
        td_attributes,
        xfam,
        mr_td,
        mr_config_id,
        mr_owner,
        mr_owner_config,
        (rtmr0, rtmr1, rtmr2, rtmr3),
        report_data,
        tee_tcb_svn_2,
        mr_service_td,
    )


def _body_to_bytes(body: TdQuoteBody) -> bytes:
    parts = [
        body.tee_tcb_svn,
        body.mr_seam,
        body.mr_signer_seam,
        body.seam_attributes,
        body.td_attributes,
        body.xfam,
        body.mr_td,
        body.mr_config_id,
        body.mr_owner,
        body.mr_owner_config,
        *body.rtmrs,
        body.report_data,
    ]
    if body.tee_tcb_svn_2 is not None and body.mr_service_td is not None:
        parts += [body.tee_tcb_svn_2, body.mr_service_td]
    return b"".join(parts)


def _parse_signature_data(data: bytes, start: int, end: int) -> QuoteSignatureData:
    # Signature, attestation key, then one Certification Data that must fill the rest exactly.
    cert_start = start + SIGNATURE_SIZE + ATTESTATION_KEY_SIZE
    if cert_start + CERT_DATA_HEADER_SIZE > end:
        raise ParseError(
            "quote.signature_data_size",
            "too small for signature, key and certification data header",
            expected=f">= {cert_start + CERT_DATA_HEADER_SIZE - start}",
            actual=end - start,
        )
    cert_type, cert_size = _CERT_HEADER.unpack_from(data, cert_start)
    if cert_type != CERT_DATA_TYPE_QE_REPORT:
        raise ParseError(
            "quote.certification_data.type",
            "expected QE Report Certification Data",
            expected=CERT_DATA_TYPE_QE_REPORT,
            actual=cert_type,
        )
    inner_start = cert_start + CERT_DATA_HEADER_SIZE
    if inner_start + cert_size != end:
        raise ParseError(
            "quote.certification_data.size",
            "certification data does not fill the signature data exactly",
            expected=end - inner_start,
            actual=cert_size,
        )
    return QuoteSignatureData(
        signature=data[start : start + SIGNATURE_SIZE],
        attestation_key=data[start + SIGNATURE_SIZE : cert_start],
        certification=_parse_qe_report_certification(data, inner_start, end),
    )


def _parse_qe_report_certification(data: bytes, start: int, end: int) -> QeReportCertificationData:
    sig_start = start + ENCLAVE_REPORT_SIZE
    auth_size_at = sig_start + SIGNATURE_SIZE
    if auth_size_at + QE_AUTH_DATA_SIZE_FIELD > end:
        raise ParseError(
            "quote.qe_report_certification_data",
            "too small for QE report, signature and auth data size",
            expected=f">= {auth_size_at + QE_AUTH_DATA_SIZE_FIELD - start}",
            actual=end - start,
        )
    (auth_size,) = _U16.unpack_from(data, auth_size_at)
    auth_start = auth_size_at + QE_AUTH_DATA_SIZE_FIELD
    chain_header = auth_start + auth_size
    if chain_header + CERT_DATA_HEADER_SIZE > end:
        raise ParseError(
            "quote.qe_auth_data.size",
            "QE auth data leaves no room for the PCK certification data",
            expected=f"<= {end - auth_start - CERT_DATA_HEADER_SIZE}",
            actual=auth_size,
        )
    chain_type, chain_size = _CERT_HEADER.unpack_from(data, chain_header)
    if chain_type != CERT_DATA_TYPE_PCK_CHAIN:
        raise ParseError(
            "quote.pck_cert_chain.type",
            "expected a PEM PCK certificate chain",
            expected=CERT_DATA_TYPE_PCK_CHAIN,
            actual=chain_type,
        )
    chain_start = chain_header + CERT_DATA_HEADER_SIZE
    if chain_start + chain_size != end:
        raise ParseError(
            "quote.pck_cert_chain.size",
            "PCK chain does not fill the QE report certification data exactly",
            expected=end - chain_start,
            actual=chain_size,
        )
    qe_raw = data[start:sig_start]
    pem = data[chain_start:end]
    return QeReportCertificationData(
        qe_report=_parse_enclave_report(qe_raw),
        qe_report_raw=qe_raw,
        qe_report_signature=data[sig_start:auth_size_at],
        qe_auth_data=data[auth_start:chain_header],
        pck_cert_chain_pem=pem,
        pck_cert_chain=parse_pem_chain(pem, check="quote.pck_cert_chain"),
    )


def _parse_enclave_report(raw: bytes) -> EnclaveReport:
    (
        cpu_svn, misc_select, reserved1, attributes, mr_enclave, reserved2, mr_signer,
        reserved3, isv_prod_id, isv_svn, reserved4, report_data,
    ) = _ENCLAVE_REPORT.unpack_from(raw, 0)  # fmt: skip
    if (reserved1 + reserved2 + reserved3 + reserved4).count(0) != _QE_RESERVED_TOTAL:
        for name, value in (
            ("reserved1", reserved1),
            ("reserved2", reserved2),
            ("reserved3", reserved3),
            ("reserved4", reserved4),
        ):
            if value.count(0) != len(value):
                raise ParseError(
                    f"quote.qe_report.{name}",
                    "reserved bytes must be zero",
                    expected="all zero",
                    actual=value,
                )
    return EnclaveReport(
        cpu_svn, misc_select, attributes, mr_enclave, mr_signer, isv_prod_id, isv_svn, report_data
    )


def parse_pem_chain(
    pem: bytes, *, check: str, count: int | None = PCK_CHAIN_LENGTH
) -> tuple[bytes, ...]:
    """Strictly split a PEM certificate chain into DER certificates.

    Only CERTIFICATE blocks separated by line breaks are accepted, optionally
    followed by NUL terminators; any other byte is an error, as is a block whose
    base64 is not canonical or whose DER length does not match. ``count`` (when
    set) is the exact number of certificates required.
    """
    certs: list[bytes] = []
    size = len(pem)
    pos = _skip_line_breaks(pem, 0)
    while pos < size and pem[pos] != 0:
        finish = pem.find(_PEM_FINISH, pos)
        if finish < 0 or not pem.startswith(_PEM_BEGIN, pos):
            why = (
                "it does not start with -----BEGIN CERTIFICATE-----"
                if not pem.startswith(_PEM_BEGIN, pos)
                else "no -----END CERTIFICATE----- line follows its BEGIN line"
            )
            raise ParseError(
                check,
                f"certificate {len(certs)} (at byte {pos}) is not a well-formed PEM block: {why}",
                expected="-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----",
                # The bytes as text, escaped (not Python's b'...' notation).
                actual=pem[pos : pos + 40].decode("latin-1").encode("unicode_escape").decode(),
            )
        body = pem[pos + len(_PEM_BEGIN) : finish].translate(None, _LINE_BREAKS)
        try:
            # strict: any byte outside the base64 alphabet (a space, a stray '-'), misplaced
            # padding or a dangling character is an error.
            der = binascii.a2b_base64(body, strict_mode=True)
        except binascii.Error as err:
            raise ParseError(
                check,
                f"certificate {len(certs)} (at byte {pos}) is not a well-formed PEM block: {err}",
            ) from err
        _check_der_length(der, check=f"{check}[{len(certs)}]")
        certs.append(der)
        pos = _skip_line_breaks(pem, finish + len(_PEM_FINISH))
    end = pos
    while end < size and pem[end] == 0:  # NUL terminator(s), as in Intel's quotes
        end += 1
    if end != size:
        raise ParseError(
            check,
            f"unexpected bytes at {end} after the last certificate",
            expected="only line breaks or NUL",
            actual=repr(pem[end : end + 40]),
        )
    if count is not None and len(certs) != count:
        raise ParseError(
            f"{check}.length",
            "wrong number of certificates",
            expected=count,
            actual=len(certs),
        )
    return tuple(certs)


def _skip_line_breaks(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _LINE_BREAKS:
        pos += 1
    return pos


def _check_der_length(der: bytes, *, check: str) -> None:
    # Outer SEQUENCE with a definite length that covers the buffer exactly.
    if len(der) < 2 or der[0] != 0x30:
        raise ParseError(check, "not a DER SEQUENCE")
    first = der[1]
    if first < 0x80:
        header, length = 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(der) < 2 + n:
            raise ParseError(check, "bad DER length")
        header, length = 2 + n, int.from_bytes(der[2 : 2 + n], "big")
    if header + length != len(der):
        raise ParseError(
            check,
            "DER length does not match the PEM block",
            expected=header + length,
            actual=len(der),
        )


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    """Every parsed field, JSON-friendly (bytes as hex). Unverified: for display only."""
    header = quote.header
    body = quote.body
    cert = quote.signature_data.certification
    qe = cert.qe_report
    out: dict[str, Any] = {
        "header": {
            "version": header.version,
            "attestation_key_type": header.attestation_key_type,
            "tee_type": f"0x{header.tee_type:x}",
            "qe_svn": header.qe_svn,
            "pce_svn": header.pce_svn,
            "qe_vendor_id": header.qe_vendor_id.hex(),
            "user_data": header.user_data.hex(),
        },
        "body_type": quote.body_type,
        "td_report": td_report_to_dict(body),
        "signature": {
            "signature": quote.signature_data.signature.hex(),
            "attestation_key": quote.signature_data.attestation_key.hex(),
            "qe_report": {
                "cpu_svn": qe.cpu_svn.hex(),
                "misc_select": f"0x{qe.misc_select:08x}",
                "attributes": qe.attributes.hex(),
                "mr_enclave": qe.mr_enclave.hex(),
                "mr_signer": qe.mr_signer.hex(),
                "isv_prod_id": qe.isv_prod_id,
                "isv_svn": qe.isv_svn,
                "report_data": qe.report_data.hex(),
            },
            "qe_report_signature": cert.qe_report_signature.hex(),
            "qe_auth_data": cert.qe_auth_data.hex(),
            "pck_cert_chain_sha256": [
                hashlib.sha256(der).hexdigest() for der in cert.pck_cert_chain
            ],
        },
        "signed_size": quote.signed_size,
        "trailing_bytes": len(quote.trailing),
    }
    return out


def td_report_to_dict(body: TdQuoteBody) -> dict[str, Any]:
    """The TD report's fields (the values a ``[tdx]`` policy pins), JSON-friendly."""
    out: dict[str, Any] = {
        "version": body.td_report_version,
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
        "mr_seam": body.mr_seam.hex(),
        "mr_signer_seam": body.mr_signer_seam.hex(),
        "seam_attributes": body.seam_attributes.hex(),
        "td_attributes": body.td_attributes.hex(),
        "debug": body.debug,
        "xfam": body.xfam.hex(),
        "mr_td": body.mr_td.hex(),
        "mr_config_id": body.mr_config_id.hex(),
        "mr_owner": body.mr_owner.hex(),
        "mr_owner_config": body.mr_owner_config.hex(),
        **{f"rtmr{i}": rtmr.hex() for i, rtmr in enumerate(body.rtmrs)},
        "report_data": body.report_data.hex(),
    }
    if body.tee_tcb_svn_2 is not None and body.mr_service_td is not None:
        out["tee_tcb_svn_2"] = body.tee_tcb_svn_2.hex()
        out["mr_service_td"] = body.mr_service_td.hex()
    return out


def tdx_summary(quote: Quote) -> dict[str, Any]:
    """What ``VerifiedEvidence.summary()`` adds for a TDX quote."""
    return {"quote_version": quote.version, "td_report": td_report_to_dict(quote.body)}
