"""SIMULATED NVIDIA GPUs: evidence in the real SPDM 1.1 layout, signed by a local chain.

For CI and laptops (no GPU), like ``attestation.snp.simulate``: a locally made
P-384 chain whose root is named "SIMULATED NVIDIA Device Identity CA" signs
reports over whatever nonce the enclave asks for. The verifier runs the same
code on it; only the root differs, and it is trusted only when the party's
policy says ``allow_simulated = true`` (every result says SIMULATED). Nothing
here proves anything about hardware.
"""

from __future__ import annotations

import hashlib
import os
import struct
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from attestation.nvidia.abi import (
    BLOCK_HEADER,
    DMTF_DIGEST_SIZE,
    DMTF_HEADER,
    DMTF_VALUE_SIZE,
    GET_MEASUREMENTS,
    MEASUREMENT_SPEC_DMTF,
    MEASUREMENTS,
    REQUEST,
    REQUEST_PARAM1_SIGNATURE,
    REQUEST_PARAM2_ALL_BLOCKS,
    SPDM_VERSION_1_1,
    STATUS_DISABLED,
    OpaqueType,
)
from attestation.nvidia.chain import OID_TCG_DICE_TCBINFO_HOPPER
from attestation.nvidia.verify import SIMULATED_ROOT_NAME, DeviceEvidence

_SHA384_OID_DER = bytes.fromhex("0609608648016503040202")


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SIMULATED (not NVIDIA)"),
        ]
    )


class SimulatedGpu:
    """One simulated Hopper GPU: its own chain and FWID; signs reports over any nonce."""

    def __init__(self, *, driver_version: str = "550.90.07", index: int = 0) -> None:
        now = datetime.now(UTC)
        start, end = now - timedelta(days=1), now + timedelta(days=3650)
        root_key = ec.generate_private_key(ec.SECP384R1())
        brom_key = ec.generate_private_key(ec.SECP384R1())
        self._leaf_key = ec.generate_private_key(ec.SECP384R1())
        self.fwid = hashlib.sha384(b"simulated fwid %d" % index + os.urandom(16)).digest()
        self.driver_version = driver_version
        root = self._cert(
            _name(SIMULATED_ROOT_NAME),
            root_key,
            _name(SIMULATED_ROOT_NAME),
            root_key,
            start,
            end,
            ca=True,
        )
        brom_name = _name("GH100 A01 GSP BROM")
        brom = self._cert(brom_name, brom_key, root.subject, root_key, start, end, ca=True)
        tcb_info = _der(
            0x30,
            _der(0x02, b"\x01") + _der(0x30, _SHA384_OID_DER + _der(0x04, self.fwid)),
        )
        leaf = self._cert(
            _name("GH100 A01 GSP FMC LF"),
            self._leaf_key,
            brom.subject,
            brom_key,
            start,
            end,
            ca=False,
            extra=x509.UnrecognizedExtension(
                x509.ObjectIdentifier(OID_TCG_DICE_TCBINFO_HOPPER), tcb_info
            ),
        )
        self.root = root
        # (certificate, its issuer, the issuer's key) for every non-root certificate.
        self._issued = ((leaf, brom, brom_key), (brom, root, root_key))
        self.certs_pem = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (leaf, brom, root)
        )

    @staticmethod
    def _cert(
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        issuer_key: ec.EllipticCurvePrivateKey,
        start: datetime,
        end: datetime,
        *,
        ca: bool,
        extra: x509.ExtensionType | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if extra is not None:
            builder = builder.add_extension(extra, critical=False)
        return builder.sign(issuer_key, hashes.SHA384())

    def report(self, nonce: bytes) -> bytes:
        """A GET_MEASUREMENTS request (``nonce``) + MEASUREMENTS response, signed."""
        request = REQUEST.pack(
            SPDM_VERSION_1_1,
            GET_MEASUREMENTS,
            REQUEST_PARAM1_SIGNATURE,
            REQUEST_PARAM2_ALL_BLOCKS,
            nonce,
            0,
        )
        record = b"".join(
            BLOCK_HEADER.pack(i, MEASUREMENT_SPEC_DMTF, DMTF_VALUE_SIZE)
            + DMTF_HEADER.pack(1, DMTF_DIGEST_SIZE)
            + hashlib.sha384(b"simulated measurement %d" % i).digest()
            for i in range(1, 65)
        )
        fields = [
            (OpaqueType.DRIVER_VERSION, self.driver_version.encode() + b"\x00"),
            (OpaqueType.VBIOS_VERSION, bytes((0x00, 0x9F, 0x00, 0x96, 0x01, 0, 0, 0))),
            (OpaqueType.CHIP_SKU, b"882\x00"),
            (OpaqueType.PROJECT, b"1010\x00"),
            (OpaqueType.NVDEC0_STATUS, bytes((STATUS_DISABLED,))),
            (OpaqueType.FWID, self.fwid),
            (OpaqueType.PROTECTED_PCIE_STATUS, bytes((STATUS_DISABLED,))),
        ]
        opaque = b"".join(struct.pack("<HH", int(t), len(v)) + v for t, v in fields)
        response = (
            bytes((SPDM_VERSION_1_1, MEASUREMENTS, 0, 0, 64))
            + len(record).to_bytes(3, "little")
            + record
            + os.urandom(32)
            + struct.pack("<H", len(opaque))
            + opaque
        )
        signed = request + response
        der = self._leaf_key.sign(signed, ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def ocsp_responses(self, *, revoked: bool = False, hours: int = 24) -> dict[str, bytes]:
        """OCSP answers for this GPU's leaf and BROM, as a host's cache would hold them
        (``DIR/nvidia/ocsp/<serial>.der``), signed by each certificate's issuer."""
        now = datetime.now(UTC)
        status = ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD
        out = {}
        for cert, issuer, key in self._issued:
            builder = (
                ocsp.OCSPResponseBuilder()
                .add_response(
                    cert=cert,
                    issuer=issuer,
                    algorithm=hashes.SHA384(),
                    cert_status=status,
                    this_update=now - timedelta(minutes=5),
                    next_update=now + timedelta(hours=hours),
                    revocation_time=now - timedelta(minutes=5) if revoked else None,
                    revocation_reason=None,
                )
                .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
            )
            der = builder.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)
            out[f"{cert.serial_number:x}"] = der
        return out

    def evidence(self, nonce: bytes) -> DeviceEvidence:
        """This GPU's evidence over ``nonce``."""
        return DeviceEvidence(self.report(nonce), self.certs_pem)
