"""The few fixed offsets a provider reads to sanity-check what the kernel returned.

Providers do not parse evidence (``attestation.snp.abi`` / ``attestation.tdx.abi``
do); they only check that the blob is long enough and carries the REPORT_DATA
they asked for, so a raced or truncated answer fails here, at the source,
instead of as a confusing binding error at every verifier.
"""

from __future__ import annotations

import struct

from attestation.providers.base import REPORT_DATA_SIZE
from attestation.providers.errors import ProviderError

# SEV-SNP firmware ABI spec (56860), Table 22 ATTESTATION_REPORT.
SNP_REPORT_SIZE = 0x4A0
SNP_KEY_INFO_OFFSET = 0x48  # bits 4:2 SIGNING_KEY: 0 VCEK, 1 VLEK, 7 none
SNP_REPORT_DATA_OFFSET = 0x50
SNP_SIGNING_KEY_VLEK = 1

# Intel TDX DCAP quote library, appendix "Quote format": a 48-byte header, then
# the TD report body (v4) or body type u16 + body size u32 + body (v5). In the
# body, REPORTDATA follows TEE_TCB_SVN..RTMR3 (520 bytes) in both TD 1.0 and 1.5.
TDX_QUOTE_HEADER_SIZE = 48
TDX_BODY_REPORT_DATA_OFFSET = 520
TDX_QUOTE_MIN_SIZE = TDX_QUOTE_HEADER_SIZE + 584 + 4  # header + TD10 body + signature length


def check_report_data(report_data: bytes) -> bytes:
    """The 64 bytes every provider takes; anything else is a caller bug."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise ProviderError(
            "provider.report_data",
            "REPORT_DATA must be exactly 64 bytes",
            expected=REPORT_DATA_SIZE,
            actual=len(report_data),
        )
    return bytes(report_data)


def check_snp_report(raw: bytes, report_data: bytes, *, source: str) -> bytes:
    """The first 1184 bytes of ``raw`` after checking size and REPORT_DATA."""
    if len(raw) < SNP_REPORT_SIZE:
        raise ProviderError(
            f"{source}.short_read",
            "the SNP report is shorter than the firmware ABI's report",
            expected=SNP_REPORT_SIZE,
            actual=len(raw),
        )
    got = raw[SNP_REPORT_DATA_OFFSET : SNP_REPORT_DATA_OFFSET + REPORT_DATA_SIZE]
    if got != report_data:
        raise ProviderError(
            f"{source}.report_data",
            "the report does not carry the REPORT_DATA we asked for (another writer raced us?)",
            expected=report_data,
            actual=got,
        )
    return bytes(raw[:SNP_REPORT_SIZE])


def snp_signed_by_vlek(raw: bytes) -> bool:
    """True when KEY_INFO.SIGNING_KEY says the report is VLEK-signed."""
    (key_info,) = struct.unpack_from("<I", raw, SNP_KEY_INFO_OFFSET)
    return (key_info >> 2) & 0x7 == SNP_SIGNING_KEY_VLEK


def tdx_quote_report_data(quote: bytes) -> bytes:
    """REPORTDATA of a v4 or v5 TD quote (bounds-checked)."""
    if len(quote) < TDX_QUOTE_MIN_SIZE:
        raise ProviderError(
            "tdx_quote.short_read",
            "the TD quote is shorter than a header, TD report body and signature length",
            expected=f">= {TDX_QUOTE_MIN_SIZE}",
            actual=len(quote),
        )
    (version,) = struct.unpack_from("<H", quote, 0)
    if version == 4:
        body = TDX_QUOTE_HEADER_SIZE
    elif version == 5:
        body = TDX_QUOTE_HEADER_SIZE + 2 + 4
    else:
        raise ProviderError(
            "tdx_quote.version", "unsupported quote version", expected="4 or 5", actual=version
        )
    start = body + TDX_BODY_REPORT_DATA_OFFSET
    return bytes(quote[start : start + REPORT_DATA_SIZE])


def check_tdx_quote(quote: bytes, report_data: bytes, *, source: str) -> bytes:
    """``quote`` after checking that it carries ``report_data``."""
    got = tdx_quote_report_data(quote)
    if got != report_data:
        raise ProviderError(
            f"{source}.report_data",
            "the quote does not carry the REPORT_DATA we asked for (another writer raced us?)",
            expected=report_data,
            actual=got,
        )
    return bytes(quote)
