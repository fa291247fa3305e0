"""Bundled, pinned NVIDIA trust anchors.

* ``roots/nvidia_device_identity_ca.pem``: "NVIDIA Device Identity CA", the root
  of every Hopper, Blackwell and NVSwitch device chain (the same certificate
  nvtrust's local verifier ships as ``verifier_device_root.pem``).
* ``roots/nvidia_rim_root_ca.pem``: "NVIDIA CoRIM signing Root CA", the root of
  the certificates that sign reference integrity manifests (RIMs).

Both are pinned by the SHA-256 of their DER; an altered file refuses to load.

They are trust anchors the product needs in the field, bundled for the same
reason as the AMD ARKs beside them, not test data: NVIDIA publishes them in its
own verifier (NVIDIA/nvtrust ``local_gpu_verifier``, BSD-3-Clause; the device
root is also in CoCo Trustee, Apache-2.0). The shared evidence vectors carry the
same public certificates; tests read every vector from ``../shared/vectors``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.snp._x509 import fingerprint

DEVICE_IDENTITY_CA_SHA256 = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
RIM_ROOT_CA_SHA256 = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
DEVICE_IDENTITY_CA_NAME = "NVIDIA Device Identity CA"
RIM_ROOT_CA_NAME = "NVIDIA CoRIM signing Root CA"


class CorruptTrustAnchors(RuntimeError):
    """A bundled NVIDIA root does not match its pin: the installation is broken."""


def _load(name: str, pin: str) -> x509.Certificate:
    pem = resources.files("attestation").joinpath(f"roots/{name}").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    if fingerprint(cert) != pin:
        raise CorruptTrustAnchors(f"bundled {name} is not the pinned certificate (SHA-256 {pin})")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CorruptTrustAnchors(f"bundled {name} has no EC key")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as err:
        raise CorruptTrustAnchors(f"bundled {name} is not validly self-signed") from err
    return cert


@cache
def device_identity_ca() -> x509.Certificate:
    """The pinned NVIDIA Device Identity CA (loaded and checked once)."""
    return _load("nvidia_device_identity_ca.pem", DEVICE_IDENTITY_CA_SHA256)


@cache
def rim_root_ca() -> x509.Certificate:
    """The pinned NVIDIA CoRIM signing Root CA (loaded and checked once)."""
    return _load("nvidia_rim_root_ca.pem", RIM_ROOT_CA_SHA256)
