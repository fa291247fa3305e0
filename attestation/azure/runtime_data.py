"""The HCL report's runtime ("variable") data: a JSON document naming the vTPM keys.

Shape (every real vector; ``vectors/README.md`` section 4.0)::

    {"keys": [{"kid": "HCLAkPub", "kty": "RSA", "key_ops": ["sign"], "e": "AQAB", "n": "…"},
              {"kid": "HCLEkPub", "kty": "RSA", "key_ops": ["encrypt"], …}],
     "vm-configuration": {"secure-boot": true, "tpm-enabled": true, "vmUniqueId": "…", …},
     "user-data": "<128 upper-case hex digits>"}

Strict: the bytes must be UTF-8 JSON with no duplicate keys, and exactly one
``HCLAkPub`` RSA key (2048 bits or more, base64url without padding). Other
keys and claims are kept for display only; nothing but the AK is trusted from
here, and only after the hardware report's REPORT_DATA has been checked against
the hash of these exact bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.errors import ParseError
from attestation.text import no_duplicate_keys, parse_hex

AK_KID = "HCLAkPub"
EK_KID = "HCLEkPub"
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096
MAX_RUNTIME_DATA_SIZE = 16 * 1024

_B64URL = re.compile(r"\A[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True)
class RuntimeData:
    """Parsed runtime data. ``ak``: the attestation key; ``claims``: the whole document."""

    ak: rsa.RSAPublicKey
    key_ids: tuple[str, ...]
    vm_configuration: Mapping[str, Any]
    user_data: bytes | None
    claims: Mapping[str, Any]
    raw: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields for ``tcme evidence show``."""
        numbers = self.ak.public_numbers()
        return {
            "keys": list(self.key_ids),
            "ak": {
                "kid": AK_KID,
                "bits": self.ak.key_size,
                "e": numbers.e,
                "n": f"{numbers.n:x}",
            },
            "vm_configuration": dict(self.vm_configuration),
            "user_data": self.user_data.hex() if self.user_data is not None else None,
        }


def parse_runtime_data(data: bytes) -> RuntimeData:
    """Parse the variable data; ``ParseError`` (``runtime_data.*``) when malformed."""
    data = bytes(data)
    if len(data) > MAX_RUNTIME_DATA_SIZE:
        raise ParseError(
            "runtime_data.size",
            "runtime data too large",
            expected=f"<= {MAX_RUNTIME_DATA_SIZE} bytes",
            actual=len(data),
        )
    try:
        doc = json.loads(
            data.decode("utf-8"), object_pairs_hook=no_duplicate_keys("runtime_data.duplicate_key")
        )
    except UnicodeDecodeError as err:
        raise ParseError("runtime_data.utf8", "runtime data is not UTF-8", actual=str(err)) from err
    except json.JSONDecodeError as err:
        raise ParseError(
            "runtime_data.json", "runtime data is not JSON", actual=f"{err.msg} at {err.pos}"
        ) from err
    if not isinstance(doc, dict):
        raise ParseError("runtime_data.json", "not a JSON object", actual=type(doc).__name__)
    keys = doc.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ParseError(
            "runtime_data.keys", "missing or not a list of JWKs", actual=repr(keys)[:80]
        )
    kids = tuple(str(k.get("kid")) for k in keys)
    aks = [k for k in keys if k.get("kid") == AK_KID]
    if len(aks) != 1:
        raise ParseError(
            "runtime_data.ak",
            f"the runtime data must name exactly one {AK_KID} key",
            expected=1,
            actual=len(aks),
        )
    vm_configuration = doc.get("vm-configuration", {})
    if not isinstance(vm_configuration, dict):
        raise ParseError(
            "runtime_data.vm_configuration", "not a JSON object", actual=type(vm_configuration)
        )
    return RuntimeData(
        ak=rsa_jwk(aks[0], "runtime_data.ak"),
        key_ids=kids,
        vm_configuration=vm_configuration,
        user_data=_user_data(doc.get("user-data")),
        claims=doc,
        raw=data,
    )


def rsa_jwk(jwk: Mapping[str, Any], check: str) -> rsa.RSAPublicKey:
    """An RSA public key from a JWK (RFC 7517/7518): ``kty``, ``n`` and ``e``, strictly."""
    if jwk.get("kty") != "RSA":
        raise ParseError(f"{check}.kty", "not an RSA key", expected="RSA", actual=jwk.get("kty"))
    # key_ops is not checked: Azure's own older reports label the AK ["encrypt"]
    # (acvm_snp_milan_v2), and what the key may do is decided by the TPM, not the label.
    n = _b64url_int(jwk.get("n"), f"{check}.n")
    e = _b64url_int(jwk.get("e"), f"{check}.e")
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
        raise ParseError(
            f"{check}.n",
            "RSA modulus size out of range",
            expected=f"{MIN_RSA_BITS}..{MAX_RSA_BITS} bits",
            actual=f"{n.bit_length()} bits",
        )
    if e < 3 or e % 2 == 0:
        raise ParseError(
            f"{check}.e", "invalid RSA public exponent", expected="odd, >= 3", actual=e
        )
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as err:
        raise ParseError(f"{check}", "invalid RSA public key", actual=str(err)) from err


def _b64url_int(value: Any, check: str) -> int:
    if not isinstance(value, str) or not _B64URL.match(value):
        raise ParseError(check, "not base64url without padding", actual=repr(value)[:40])
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ParseError(check, "not base64url", actual=repr(value)[:40]) from err
    if not raw or raw[0] == 0:
        raise ParseError(check, "not a minimal big-endian integer", actual=raw[:4].hex())
    return int.from_bytes(raw, "big")


def _user_data(value: Any) -> bytes | None:
    if value is None:
        return None
    return parse_hex(value, "runtime_data.user_data", error=ParseError, exact=True)
