"""Claims: what the enclave says about itself, bound into every report.

Canonical JSON::

    {"type": "tcme/v1/claims", "runtime": "tcme 0.1.0", "tee": "sev-snp" | "tdx",
     "model": {"root_digest": hex, "hash_algorithm": str, "signer": str,
               "issuer": str, "method": str},
     "hpke": {"suite": "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM", "public_key": b64},
     "signing": {"algorithm": "ed25519", "public_key": b64},
     "gpu": {"mode": {"cc_mode": "on", "devtools": false},          (only with GPUs)
             "devices": [{"report": b64, "certs": b64, "digest": hex}, ...]}}

``gpu`` is present only on an enclave with attested GPUs (evidence kind
``nvidia-gpu``): each device's SPDM report and certificate chain, signed by the
GPU over the nonce ``attestation.nvidia.binding.gpu_nonce_for`` derives from the
*identity claims* (these claims without ``gpu``; ``Claims.identity_digest``),
contract, session and the party's nonce. REPORT_DATA binds the digest of the
whole claims, GPU evidence included. Sessions, capability records and receipts
name the identity digest, which does not change from one attestation to the next
(and equals ``digest`` on an enclave without GPUs).

The claims are self-asserted; they mean something only once a verified report
binds ``H(claims)`` (attestation.binding) and the party's policy accepts the
measured runtime that made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import ParseError
from attestation.nvidia.verify import evidence_digest
from attestation.tee import Tee
from tcme.base.encoding import (
    b64,
    canonical_json,
    json_type,
    parse_canonical_json,
    require_keys,
    sha256,
    unb64,
)
from tcme.base.keys import (
    ED25519_PUBLIC_SIZE,
    HPKE_PUBLIC_SIZE,
    HPKE_SUITE_NAME,
    SIGNING_ALGORITHM,
    HpkePublicKey,
    ed25519_public,
)

CLAIMS_TYPE = "tcme/v1/claims"
# The CPU kinds an enclave runs on (device kinds travel as GPU evidence in the claims).
TEE_TYPES = tuple(t.value for t in (Tee.SEV_SNP, Tee.TDX, Tee.AZ_SNP_VTPM, Tee.AZ_TDX_VTPM))
MAX_GPU_DEVICES = 16  # 8 GPUs + 4 NVSwitches in the largest protected-PCIe system, with room


@dataclass(frozen=True)
class Claims:
    """Parsed claims; ``raw`` is the exact bytes that were bound, ``digest`` = SHA-256(raw)."""

    raw: bytes
    digest: bytes
    runtime: str
    tee: str
    model_root_digest: str
    model_hash_algorithm: str
    model_signer: str
    model_issuer: str
    model_method: str
    hpke_public_key: HpkePublicKey
    signing_public_key: ed25519.Ed25519PublicKey
    signing_public_bytes: bytes
    identity_digest: bytes = b""  # SHA-256 of the claims without ``gpu``
    gpu_mode: dict[str, Any] | None = None
    gpu_devices: tuple[tuple[bytes, bytes], ...] = ()  # (report, certs) per device

    @property
    def has_gpu(self) -> bool:
        """True when the claims carry GPU evidence."""
        return self.gpu_mode is not None

    def summary(self) -> dict[str, str]:
        """Printable fields for a verification summary."""
        return {
            "runtime": self.runtime,
            "tee": self.tee,
            "model_root_digest": self.model_root_digest,
            "model_hash_algorithm": self.model_hash_algorithm,
            "model_signer": self.model_signer,
            "model_issuer": self.model_issuer,
            "model_signing_method": self.model_method,
            "claims_digest": self.digest.hex(),
            "identity_digest": self.identity_digest.hex(),
        }


def build_claims(
    *,
    runtime: str,
    tee: str,
    model_root_digest: str,
    model_hash_algorithm: str,
    model_signer: str,
    model_issuer: str | None,
    model_method: str,
    hpke_public_key: bytes,
    signing_public_key: bytes,
) -> bytes:
    """The enclave's canonical claims bytes (parsed back to check every field)."""
    raw = canonical_json(
        {
            "type": CLAIMS_TYPE,
            "runtime": runtime,
            "tee": tee,
            "model": {
                "root_digest": model_root_digest,
                "hash_algorithm": model_hash_algorithm,
                "signer": model_signer,
                "issuer": model_issuer or "",
                "method": model_method,
            },
            "hpke": {"suite": HPKE_SUITE_NAME, "public_key": b64(hpke_public_key)},
            "signing": {"algorithm": SIGNING_ALGORITHM, "public_key": b64(signing_public_key)},
        }
    )
    parse_claims(raw)
    return raw


def with_gpu_evidence(
    claims: bytes, mode: dict[str, Any], devices: list[tuple[bytes, bytes, bytes]]
) -> bytes:
    """The identity ``claims`` plus ``gpu``: the mode and (report, certs, digest) per device."""
    obj = parse_canonical_json(claims, "claims")
    if "gpu" in obj:
        raise ParseError("claims.gpu", "the claims already carry GPU evidence")
    obj["gpu"] = {
        "mode": {"cc_mode": str(mode.get("cc_mode")), "devtools": bool(mode.get("devtools"))},
        "devices": [
            {"report": b64(report), "certs": b64(certs), "digest": digest.hex()}
            for report, certs, digest in devices
        ],
    }
    raw = canonical_json(obj)
    parse_claims(raw)
    return raw


def claims_digest(claims: bytes) -> bytes:
    """SHA-256 of the exact claims bytes."""
    return sha256(claims)


def parse_claims(claims: bytes) -> Claims:
    """Parse canonical claims bytes; raises ``ParseError`` naming the bad field."""
    obj = require_keys(
        parse_canonical_json(claims, "claims"),
        "claims",
        {"type", "runtime", "tee", "model", "hpke", "signing"},
        {"gpu"},
    )
    _expect(obj["type"] == CLAIMS_TYPE, "claims.type", CLAIMS_TYPE, obj["type"])
    _expect(obj["tee"] in TEE_TYPES, "claims.tee", " or ".join(TEE_TYPES), obj["tee"])
    runtime = _string(obj["runtime"], "claims.runtime")
    model = require_keys(
        obj["model"],
        "claims.model",
        {"root_digest", "hash_algorithm", "signer", "issuer", "method"},
    )
    root = _string(model["root_digest"], "claims.model.root_digest")
    if not root or any(c not in "0123456789abcdef" for c in root):
        raise ParseError("claims.model.root_digest", "expected lowercase hex", actual=root[:80])
    hpke_obj = require_keys(obj["hpke"], "claims.hpke", {"suite", "public_key"})
    _expect(
        hpke_obj["suite"] == HPKE_SUITE_NAME,
        "claims.hpke.suite",
        HPKE_SUITE_NAME,
        hpke_obj["suite"],
    )
    hpke_raw = unb64(hpke_obj["public_key"], "claims.hpke.public_key", size=HPKE_PUBLIC_SIZE)
    signing = require_keys(obj["signing"], "claims.signing", {"algorithm", "public_key"})
    _expect(
        signing["algorithm"] == SIGNING_ALGORITHM,
        "claims.signing.algorithm",
        SIGNING_ALGORITHM,
        signing["algorithm"],
    )
    signing_raw = unb64(
        signing["public_key"], "claims.signing.public_key", size=ED25519_PUBLIC_SIZE
    )
    gpu_mode, identity = None, bytes(claims)
    gpu_devices: tuple[tuple[bytes, bytes], ...] = ()
    if "gpu" in obj:
        gpu_mode, gpu_devices = _gpu(obj["gpu"])
        identity = canonical_json({k: v for k, v in obj.items() if k != "gpu"})
    return Claims(
        raw=bytes(claims),
        digest=sha256(claims),
        identity_digest=sha256(identity),
        gpu_mode=gpu_mode,
        gpu_devices=gpu_devices,
        runtime=runtime,
        tee=obj["tee"],
        model_root_digest=root,
        model_hash_algorithm=_string(model["hash_algorithm"], "claims.model.hash_algorithm"),
        model_signer=_string(model["signer"], "claims.model.signer"),
        model_issuer=_string(model["issuer"], "claims.model.issuer"),
        model_method=_string(model["method"], "claims.model.method"),
        hpke_public_key=HpkePublicKey.from_bytes(hpke_raw, "claims.hpke.public_key"),
        signing_public_key=ed25519_public(signing_raw, "claims.signing.public_key"),
        signing_public_bytes=signing_raw,
    )


def _gpu(value: Any) -> tuple[dict[str, Any], tuple[tuple[bytes, bytes], ...]]:
    gpu = require_keys(value, "claims.gpu", {"mode", "devices"})
    mode = require_keys(gpu["mode"], "claims.gpu.mode", {"cc_mode", "devtools"})
    if not isinstance(mode["cc_mode"], str) or not isinstance(mode["devtools"], bool):
        raise ParseError("claims.gpu.mode", "cc_mode a string, devtools a boolean")
    if not isinstance(gpu["devices"], list) or not 1 <= len(gpu["devices"]) <= MAX_GPU_DEVICES:
        raise ParseError("claims.gpu.devices", expected=f"1..{MAX_GPU_DEVICES} devices")
    devices = []
    for position, item in enumerate(gpu["devices"]):
        check = f"claims.gpu.devices[{position}]"
        entry = require_keys(item, check, {"report", "certs", "digest"})
        report = unb64(entry["report"], f"{check}.report")
        certs = unb64(entry["certs"], f"{check}.certs")
        # The digest is informative (what a log shows); verifiers recompute it from the bytes.
        _expect(
            entry["digest"] == evidence_digest(report, certs).hex(),
            f"{check}.digest",
            evidence_digest(report, certs).hex(),
            entry["digest"],
        )
        devices.append((report, certs))
    return dict(mode), tuple(devices)


def _expect(ok: bool, check: str, expected: Any, actual: Any) -> None:
    if not ok:
        raise ParseError(check, expected=expected, actual=actual)


def _string(value: Any, check: str) -> str:
    if not isinstance(value, str):
        raise ParseError(check, "expected a string", actual=json_type(value))
    return value
