"""The AMD certificate table a host hands a guest beside an SNP report.

Both kernel paths deliver it: configfs-tsm's ``auxblob`` (provider ``sev_guest``)
and the certificate buffer of the ``SNP_GET_EXT_REPORT`` ioctl. Its format is
the GHCB specification's (SEV-ES GHCB Standardization v2.03, section 4.1.8.1,
MSG_REPORT_REQ, "certificate table"): entries of

    GUID (16 bytes, RFC 4122 byte order) | offset (u32 LE) | length (u32 LE)

terminated by an all-zero entry; offsets count from the start of the table.
Certificates are DER (some host tools store PEM; both are accepted).
"""

from __future__ import annotations

import ssl
import struct
import uuid
from dataclasses import dataclass

from attestation.providers.errors import ProviderError

# GHCB spec, table "Certificate Table GUIDs".
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")

GUID_NAMES = {VCEK_GUID: "VCEK", VLEK_GUID: "VLEK", ASK_GUID: "ASK", ARK_GUID: "ARK"}

ENTRY_SIZE = 24  # 16-byte GUID + u32 offset + u32 length
_ENTRY = struct.Struct("<16sII")
_ZERO_ENTRY = bytes(ENTRY_SIZE)
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class CertTable:
    """Parsed certificate table: GUID -> certificate bytes (DER or PEM as sent)."""

    entries: dict[uuid.UUID, bytes]

    def get(self, guid: uuid.UUID) -> bytes | None:
        """The raw certificate for ``guid``, or None when the host did not send it."""
        return self.entries.get(guid)

    def chain_pem(self, *, vlek: bool = False) -> bytes:
        """PEM of VEK, ASK (ASVK for VLEK), ARK: the order ``Evidence.certs`` uses.

        Certificates the host did not send are left out; an empty table gives b"".
        ``vlek`` picks the VLEK entry as the VEK (the report's KEY_INFO says which).
        """
        vek = self.get(VLEK_GUID if vlek else VCEK_GUID)
        parts = [cert for cert in (vek, self.get(ASK_GUID), self.get(ARK_GUID)) if cert]
        return b"".join(to_pem(cert) for cert in parts)


def parse_cert_table(data: bytes) -> CertTable:
    """Parse a GHCB certificate table; an empty (or all-zero) blob is an empty table.

    Raises ProviderError (check ``cert_table.*``) for an unterminated table, an
    entry that points outside the blob or into the header, or a duplicate GUID.
    """
    if not data.strip(b"\x00"):
        return CertTable({})
    headers: list[tuple[uuid.UUID, int, int]] = []
    position = 0
    while True:
        if position + ENTRY_SIZE > len(data):
            raise ProviderError(
                "cert_table.terminator",
                "certificate table has no all-zero terminating entry",
                expected=f"terminator within {len(data)} bytes",
                actual=f"ran out at byte {position}",
            )
        raw = data[position : position + ENTRY_SIZE]
        position += ENTRY_SIZE
        if raw == _ZERO_ENTRY:
            break
        guid_bytes, offset, length = _ENTRY.unpack(raw)
        headers.append((uuid.UUID(bytes=guid_bytes), offset, length))
    entries: dict[uuid.UUID, bytes] = {}
    for index, (guid, offset, length) in enumerate(headers):
        name = GUID_NAMES.get(guid, str(guid))
        if offset < position:
            raise ProviderError(
                "cert_table.offset",
                f"entry {index} ({name}) points into the table header",
                expected=f"offset >= {position}",
                actual=offset,
            )
        if offset + length > len(data):
            raise ProviderError(
                "cert_table.length",
                f"entry {index} ({name}) runs past the end of the certificate data",
                expected=f"offset+length <= {len(data)}",
                actual=offset + length,
            )
        if guid in entries:
            raise ProviderError("cert_table.duplicate", f"GUID {guid} ({name}) appears twice")
        entries[guid] = data[offset : offset + length]
    return CertTable(entries)


def build_cert_table(certs: dict[uuid.UUID, bytes]) -> bytes:
    """Serialize a certificate table (the inverse of ``parse_cert_table``).

    Used by hosts and by tests that stand in for a host; certificates are stored
    as given.
    """
    header_size = ENTRY_SIZE * (len(certs) + 1)
    header = bytearray()
    body = bytearray()
    for guid, cert in certs.items():
        header += _ENTRY.pack(guid.bytes, header_size + len(body), len(cert))
        body += cert
    header += _ZERO_ENTRY
    return bytes(header + body)


def to_pem(cert: bytes) -> bytes:
    """One certificate as PEM, whether the host sent DER or PEM.

    The DER is wrapped without being parsed: parsing belongs to the verifier
    (and AMD's serial-number-0 certificates make some parsers warn).
    """
    # Only PEM is trimmed: a DER certificate may legitimately end in a zero byte.
    stripped = cert.rstrip(b"\x00").strip()
    if stripped.startswith(_PEM_BEGIN):
        return stripped + b"\n"
    if not cert or cert[0] != 0x30:
        raise ProviderError(
            "cert_table.certificate",
            "certificate entry is neither DER (a SEQUENCE) nor PEM",
            expected="0x30 or -----BEGIN CERTIFICATE-----",
            actual=cert[:8],
        )
    return ssl.DER_cert_to_PEM_cert(cert).encode("ascii")
