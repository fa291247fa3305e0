"""A SIMULATED SEV-SNP signer: a local ARK -> ASK -> VCEK chain and byte-exact reports.

Stands in for the AMD secure processor where there is none (CI, laptops). The
reports use the real ABI layout (``attestation.snp.abi``) and the certificates
the real AMD shapes (RSASSA-PSS SHA-384 chain, AMD TCB/hwID extensions), so the
verifier runs exactly the same code on them; only the root differs. Every
subject says SIMULATED, and the verifier refuses this chain unless a policy
explicitly sets ``allow_simulated = true``.

Nothing here is a security boundary: the private keys sit unencrypted in the
directory the caller chose.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from attestation.errors import UsageError
from attestation.snp import _x509
from attestation.snp.abi import (
    ECDSA_COMPONENT_SIZE,
    POLICY_RESERVED_ONE_BIT,
    POLICY_SMT_BIT,
    REPORT_DATA_SIZE,
    SIG_ALGO_ECDSA_P384_SHA384,
    AttestationReport,
    KeyInfo,
    TcbVersion,
    parse_report,
)
from attestation.snp.verify import SIMULATED_PRODUCT

log = logging.getLogger(__name__)

ARK_CN = f"ARK-{SIMULATED_PRODUCT}"
ASK_CN = f"SEV-{SIMULATED_PRODUCT}"
VCEK_CN = "SEV-VCEK"
ORGANIZATION = "tcme SIMULATED SEV-SNP (not AMD, no hardware root of trust)"

# The simulated platform looks like a current Genoa host (CPUID family 19h model 11h).
DEFAULT_TCB = {"bootloader": 10, "tee": 0, "snp": 23, "microcode": 84}
DEFAULT_POLICY = 1 << POLICY_RESERVED_ONE_BIT | 1 << POLICY_SMT_BIT  # debug and MA off
DEFAULT_MEASUREMENT = hashlib.sha384(b"tcme simulated SEV-SNP launch").digest()
CPUID_FMS = (0x19, 0x11, 0x01)
PLATFORM_INFO = 0x25  # SMT enabled, ECC enabled, alias check complete
FIRMWARE = (1, 55, 0x28)  # major, minor, build

# RSA-2048 (AMD uses 4096) keeps creating a fresh simulated chain fast on small CI
# machines; the verifier does not depend on the key size.
_RSA_BITS = 2048
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)

_FILES = {"ark": "ark.pem", "ask": "ask.pem", "vcek": "vcek.pem"}
_PRIVATE_DIR = "private"


class SimulatedSnp:
    """A simulated AMD secure processor whose chain lives under ``directory``.

    The first use creates the ARK, ASK and VCEK keys and certificates there;
    later uses (any process) reload them, so reports stay verifiable against the
    same ``ark_sha256``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory / ".lock"):
            if not (self.directory / _FILES["vcek"]).exists():
                self._create()
            self._load()
        self._report_id = secrets.token_bytes(32)

    # -- public API ----------------------------------------------------------------

    @property
    def ark_sha256(self) -> str:
        """SHA-256 of the simulated ARK (DER), so a policy can pin this root."""
        return _x509.fingerprint(self._ark)

    @property
    def tcb(self) -> TcbVersion:
        """The TCB the simulated VCEK endorses (every report carries it)."""
        return self._tcb

    @property
    def chip_id(self) -> bytes:
        """The simulated CHIP_ID (the VCEK's hwID)."""
        return self._chip_id

    def certs_pem(self) -> bytes:
        """VCEK, then ASK, then ARK, PEM: what ``verify_evidence(certs=...)`` takes."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self._vcek, self._ask, self._ark)
        )

    def report(
        self,
        report_data: bytes,
        *,
        measurement: bytes | None = None,
        policy: int | None = None,
        version: int = 3,
        vmpl: int = 0,
        host_data: bytes | None = None,
    ) -> bytes:
        """A signed 1184-byte report over ``report_data`` (exactly 64 bytes)."""
        measurement = DEFAULT_MEASUREMENT if measurement is None else measurement
        host_data = bytes(32) if host_data is None else host_data
        _expect_len("report_data", report_data, REPORT_DATA_SIZE)
        _expect_len("measurement", measurement, 48)
        _expect_len("host_data", host_data, 32)
        if version not in (2, 3, 5):
            raise UsageError(
                "sim.version", "unsupported report version", expected="2, 3 or 5", actual=version
            )
        if not 0 <= vmpl <= 3:
            raise UsageError("sim.vmpl", "VMPL out of range", expected="0..3", actual=vmpl)
        fam, mod, step = CPUID_FMS if version >= 3 else (None, None, None)
        major, minor, build = FIRMWARE
        unsigned = AttestationReport(
            version=version,
            guest_svn=0,
            policy=DEFAULT_POLICY if policy is None else policy,
            family_id=bytes(16),
            image_id=bytes(16),
            vmpl=vmpl,
            signature_algo=SIG_ALGO_ECDSA_P384_SHA384,
            current_tcb=self._tcb,
            platform_info=PLATFORM_INFO,
            key_info=KeyInfo.from_raw(0),  # signed by the VCEK, CHIP_ID not masked
            report_data=bytes(report_data),
            measurement=bytes(measurement),
            host_data=bytes(host_data),
            id_key_digest=bytes(48),
            author_key_digest=bytes(48),
            report_id=self._report_id,
            report_id_ma=b"\xff" * 32,  # no migration agent
            reported_tcb=self._tcb,
            cpuid_fam_id=fam,
            cpuid_mod_id=mod,
            cpuid_step=step,
            chip_id=self._chip_id,
            committed_tcb=self._tcb,
            current_build=build,
            current_minor=minor,
            current_major=major,
            committed_build=build,
            committed_minor=minor,
            committed_major=major,
            launch_tcb=self._tcb,
            launch_mit_vector=0 if version >= 5 else None,
            current_mit_vector=0 if version >= 5 else None,
            signature_r=bytes(ECDSA_COMPONENT_SIZE),
            signature_s=bytes(ECDSA_COMPONENT_SIZE),
        )
        signature = self._vcek_key.sign(unsigned.signed_bytes(), ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(signature)
        signed = replace(
            unsigned,
            signature_r=r.to_bytes(ECDSA_COMPONENT_SIZE, "little"),
            signature_s=s.to_bytes(ECDSA_COMPONENT_SIZE, "little"),
        )
        raw = signed.to_bytes()
        parse_report(raw)  # the simulator must never emit what the parser would refuse
        return raw

    def crl_pem(self, *, revoke_ask: bool = False, next_update: datetime | None = None) -> bytes:
        """A CRL signed by the simulated ARK (optionally revoking the ASK), for tests."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ark.subject)
            .last_update(now - timedelta(days=1))
            .next_update(next_update or now + timedelta(days=30))
        )
        if revoke_ask:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(self._ask.serial_number)
                .revocation_date(now - timedelta(hours=1))
                .build()
            )
        crl = builder.sign(self._ark_key, hashes.SHA384(), rsa_padding=_PSS)
        return crl.public_bytes(serialization.Encoding.PEM)

    # -- creation and loading ----------------------------------------------------------

    def _create(self) -> None:
        log.warning("creating a SIMULATED SEV-SNP chain (not AMD) under %s", self.directory)
        now = datetime.now(UTC) - timedelta(days=1)
        ark_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        ask_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        vcek_key = ec.generate_private_key(ec.SECP384R1())
        ark_name, ask_name = _name(ARK_CN), _name(ASK_CN)
        ark = _ca_cert(ark_name, ark_name, ark_key.public_key(), ark_key, now)
        ask = _ca_cert(ask_name, ark_name, ask_key.public_key(), ark_key, now)
        tcb = TcbVersion.from_components(**DEFAULT_TCB)
        vcek = _vcek_cert(ask_name, vcek_key.public_key(), ask_key, now, tcb, os.urandom(64))
        private = self.directory / _PRIVATE_DIR
        private.mkdir(mode=0o700, exist_ok=True)
        for role, key in (("ark", ark_key), ("ask", ask_key), ("vcek", vcek_key)):
            _write_atomic(
                private / f"{role}.key",
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                mode=0o600,
            )
        # The VCEK is written last: its presence marks a complete chain.
        for role, cert in (("ark", ark), ("ask", ask), ("vcek", vcek)):
            _write_atomic(
                self.directory / _FILES[role], cert.public_bytes(serialization.Encoding.PEM)
            )

    def _load(self) -> None:
        certs = {
            role: x509.load_pem_x509_certificate((self.directory / name).read_bytes())
            for role, name in _FILES.items()
        }
        keys = {
            role: serialization.load_pem_private_key(
                (self.directory / _PRIVATE_DIR / f"{role}.key").read_bytes(), password=None
            )
            for role in _FILES
        }
        for role in _FILES:
            cert_pub = (
                certs[role]
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            key_pub = (
                keys[role]
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            if cert_pub != key_pub:
                raise UsageError(
                    "sim.directory",
                    f"{role} key does not match its certificate in {self.directory}",
                )
        self._ark, self._ask, self._vcek = certs["ark"], certs["ask"], certs["vcek"]
        ark_key = keys["ark"]
        if not isinstance(ark_key, rsa.RSAPrivateKey):
            raise UsageError("sim.directory", "simulated ARK key is not RSA")
        self._ark_key = ark_key
        vcek_key = keys["vcek"]
        if not isinstance(vcek_key, ec.EllipticCurvePrivateKey):
            raise UsageError("sim.directory", "simulated VCEK key is not EC P-384")
        self._vcek_key = vcek_key
        tcb = {
            name: _x509.der_integer(_x509.extension_value(self._vcek, oid) or b"", f"sim.{name}")
            for name, oid in _x509.TCB_EXTENSIONS.items()
            if name != "fmc"
        }
        self._tcb = TcbVersion.from_components(**tcb)
        self._chip_id = _x509.extension_value(self._vcek, _x509.OID_HWID) or b""


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SIMULATED_PRODUCT),
        ]
    )


def _ca_cert(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    signer: rsa.RSAPrivateKey,
    now: datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=25 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA384(), rsa_padding=_PSS)
    )


def _vcek_cert(
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signer: rsa.RSAPrivateKey,
    now: datetime,
    tcb: TcbVersion,
    chip_id: bytes,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(VCEK_CN))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=7 * 365))
    )
    extensions = {
        _x509.OID_STRUCT_VERSION: _der_int(1),
        _x509.OID_PRODUCT_NAME: b"\x16" + bytes([len(SIMULATED_PRODUCT)]) + b"SIMULATED",
        _x509.OID_HWID: chip_id,  # raw bytes, as AMD's KDS encodes it
    }
    for name, oid in _x509.TCB_EXTENSIONS.items():
        value = tcb.components().get(name)
        if value is not None:
            extensions[oid] = _der_int(value)
    for oid, der in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), der), critical=False
        )
    return builder.sign(signer, hashes.SHA384(), rsa_padding=_PSS)


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def _expect_len(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        actual = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise UsageError(
            f"sim.{name}", f"{name} must be exactly {size} bytes", expected=size, actual=actual
        )


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Several processes (test workers, enclave and CLI) may share one directory.
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
