"""NVIDIA reference integrity manifests (RIMs): signature first, then golden values.

A RIM is a SWID tag (ISO/IEC 19770-2) with TCG RIM attributes, signed with an
enveloped XML-DSig exactly as NVIDIA signs them:

* SignedInfo: CanonicalizationMethod C14N 1.1, SignatureMethod ECDSA-SHA384,
  one Reference with ``URI=""``, transforms [enveloped-signature, C14N 1.1],
  DigestMethod SHA-384;
* SignatureValue: raw r || s (96 bytes), base64;
* KeyInfo: the signer certificate followed by its chain up to the pinned
  "NVIDIA CoRIM signing Root CA".

Steps of ``verify_rim`` (tagged in the code):

(1) parse safely: bounded size, no DTD, no entities, no network, no ``xml:*``
    attributes (with none, C14N 1.0 as lxml implements it yields the C14N 1.1
    bytes, and we refuse rather than guess otherwise);
(2) the signature's shape is the one above, nothing else accepted;
(3) the **reference digest**: SHA-384 of the canonical document without its
    Signature element equals DigestValue. This runs before any golden value
    is read, so an edited payload is refused whatever it says;
(4) the SignedInfo signature under the signer certificate's key;
(5) the signer chain to the pinned RIM root, valid at the verification instant
    (RIM signer certificates live about two years: pass the time explicitly);
(6) only then the payload: ``<Resource index=i active alternatives HashK>``,
    the golden values for SPDM block ``i + 1``.

``match_measurements`` compares a verified report with verified RIMs: a RIM
applies only when its version is the report's driver or VBIOS version and its
product is the report's chip; two RIMs must never both be active on one index;
NVDEC0's index 35 is skipped when the report says NVDEC0 is disabled (nvtrust's
rule). Every mismatch is listed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from attestation.errors import ParseError, PolicyError, SignatureError
from attestation.nvidia.abi import NvidiaReport, OpaqueType
from attestation.nvidia.chain import VerifiedChain, load_chain, verify_chain
from attestation.nvidia.roots import rim_root_ca
from attestation.text import parse_hex

MAX_RIM_SIZE = 1024 * 1024
SWID_NS = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
HASH_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
TCG_RIM_NS = (
    "https://trustedcomputinggroup.org/resource/"
    "tcg-reference-integrity-manifest-rim-information-model/"
)
XML_NS = "http://www.w3.org/XML/1998/namespace"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
NVDEC0_RIM_INDEX = 35
MAX_RESOURCES = 256
MAX_ALTERNATIVES = 16


@dataclass(frozen=True)
class RimResource:
    """Golden values for SPDM block ``index + 1``; ``active`` False means "not compared"."""

    index: int
    active: bool
    hashes: tuple[bytes, ...]
    name: str


@dataclass(frozen=True)
class VerifiedRim:
    """A RIM whose digest, signature and signer chain verified (values now trustworthy)."""

    version: str  # colloquialVersion: a driver ("535.86.09") or VBIOS ("96.00.5E.00.01") version
    product: str  # "GH100", "GB100", ...
    tag_id: str
    resources: tuple[RimResource, ...]
    signer: VerifiedChain
    digest: bytes  # the verified reference digest (SHA-384)

    def active(self) -> dict[int, RimResource]:
        """Active resources by RIM index."""
        return {r.index: r for r in self.resources if r.active}


def verify_rim(xml: bytes, *, at: datetime) -> VerifiedRim:
    """Steps (1)-(6); raises ``ParseError`` or ``SignatureError`` naming the failed check."""
    # (1) parse safely
    root = _parse(xml)
    # (2) the signature's declared shape
    signature = _one(root, f"{{{DSIG_NS}}}Signature", "nvidia.rim.signature.element")
    signed_info = _one(signature, f"{{{DSIG_NS}}}SignedInfo", "nvidia.rim.signed_info")
    _algorithm(signed_info, "CanonicalizationMethod", C14N_11)
    _algorithm(signed_info, "SignatureMethod", ECDSA_SHA384)
    reference = _one(signed_info, f"{{{DSIG_NS}}}Reference", "nvidia.rim.reference")
    if reference.get("URI") != "":
        raise ParseError(
            "nvidia.rim.reference", expected='URI=""', actual=repr(reference.get("URI"))
        )
    transforms = [
        t.get("Algorithm")
        for t in reference.iterfind(f"{{{DSIG_NS}}}Transforms/{{{DSIG_NS}}}Transform")
    ]
    if transforms != [ENVELOPED, C14N_11]:
        raise ParseError(
            "nvidia.rim.transforms", expected=f"{ENVELOPED}, {C14N_11}", actual=transforms
        )
    _algorithm(reference, "DigestMethod", SHA384)
    expected_digest = _b64(_text(reference, "DigestValue"), "nvidia.rim.digest_value")
    # (3) the reference digest, before any value is read
    unsigned = copy.deepcopy(root)
    unsigned.remove(unsigned.find(f"{{{DSIG_NS}}}Signature"))
    digest = hashlib.sha384(_c14n(unsigned)).digest()
    if not hmac.compare_digest(digest, expected_digest):
        raise SignatureError(
            "nvidia.rim.digest",
            "the RIM was changed after it was signed (reference digest mismatch)",
            expected=expected_digest,
            actual=digest,
        )
    # (4) the SignedInfo signature, under the first KeyInfo certificate
    certs_b64 = [
        (c.text or "")
        for c in signature.iterfind(
            f"{{{DSIG_NS}}}KeyInfo/{{{DSIG_NS}}}X509Data/{{{DSIG_NS}}}X509Certificate"
        )
    ]
    pem = b"".join(
        b"-----BEGIN CERTIFICATE-----\n"
        + "".join(c.split()).encode()
        + b"\n-----END CERTIFICATE-----\n"
        for c in certs_b64
    )
    if not certs_b64:
        raise ParseError("nvidia.rim.key_info", "no signer certificate", actual="none")
    certs = load_chain(pem, "nvidia.rim.key_info")
    raw_signature = _b64(_text(signature, "SignatureValue"), "nvidia.rim.signature_value")
    if len(raw_signature) != 96:
        raise ParseError(
            "nvidia.rim.signature_value", expected="96 bytes (r || s)", actual=len(raw_signature)
        )
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("nvidia.rim.signature", "signer key is not EC")
    r = int.from_bytes(raw_signature[:48], "big")
    s = int.from_bytes(raw_signature[48:], "big")
    try:
        key.verify(encode_dss_signature(r, s), _c14n(signed_info), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as err:
        raise SignatureError(
            "nvidia.rim.signature",
            "SignedInfo signature does not verify under the signer certificate",
            expected="valid ECDSA-SHA384",
            actual="invalid signature",
        ) from err
    # (5) the signer chain to the pinned RIM root
    chain = verify_chain(certs, root=rim_root_ca(), at=at, check="nvidia.rim.chain")
    # (6) the payload
    meta = _one(root, f"{{{SWID_NS}}}Meta", "nvidia.rim.meta")
    payload = _one(root, f"{{{SWID_NS}}}Payload", "nvidia.rim.payload")
    return VerifiedRim(
        version=meta.get("colloquialVersion") or "",
        product=meta.get("product") or meta.get(f"{{{TCG_RIM_NS}}}PlatformModel") or "",
        tag_id=root.get("tagId") or "",
        resources=_resources(payload),
        signer=chain,
        digest=digest,
    )


@dataclass(frozen=True)
class MeasurementMatch:
    """The outcome of comparing one report with its RIMs (all of it, not the first miss)."""

    matched: tuple[int, ...]  # SPDM block indices equal to a golden value
    mismatched: tuple[int, ...]
    uncovered: tuple[int, ...]  # SPDM blocks with a non-zero value no RIM is active on
    skipped: tuple[int, ...]  # NVDEC0 when disabled
    rims: tuple[str, ...]  # "<version> (<digest>)" of each RIM used

    @property
    def ok(self) -> bool:
        """Every covered measurement matched and nothing went uncovered."""
        return not self.mismatched and not self.uncovered


def match_measurements(
    report: NvidiaReport, rims: Sequence[VerifiedRim], *, chip: str
) -> MeasurementMatch:
    """Compare ``report``'s measurement blocks with the golden values of ``rims``.

    Raises ``PolicyError`` when a RIM is for another version or chip
    (``nvidia.rim.version``) or two RIMs are active on one index
    (``nvidia.rim.overlap``). Mismatches are returned, not raised: the policy
    decides (``attestation.nvidia.policy``).
    """
    versions = {
        v.lower()
        for v in (report.opaque.driver_version, report.opaque.vbios_version)
        if v is not None
    }
    golden: dict[int, tuple[RimResource, VerifiedRim]] = {}
    for rim in rims:
        if rim.version.lower() not in versions or rim.product != chip:
            raise PolicyError(
                "nvidia.rim.version",
                "the RIM is not for this GPU's driver or VBIOS",
                expected=f"{chip} " + " or ".join(sorted(versions)),
                actual=f"{rim.product} {rim.version}",
            )
        for index, resource in rim.active().items():
            if index in golden:
                raise PolicyError(
                    "nvidia.rim.overlap",
                    f"two RIMs are active on index {index}",
                    expected="disjoint driver and VBIOS indices",
                    actual=f"{golden[index][1].version} and {rim.version}",
                )
            golden[index] = (resource, rim)
    skip_nvdec0 = report.opaque.status(OpaqueType.NVDEC0_STATUS) == "disabled"
    measured = report.measurements()
    matched, mismatched, skipped = [], [], []
    for index, (resource, _rim) in sorted(golden.items()):
        block = index + 1
        if skip_nvdec0 and index == NVDEC0_RIM_INDEX:
            skipped.append(block)
            continue
        value = measured.get(block)
        if value is not None and any(hmac.compare_digest(value, h) for h in resource.hashes):
            matched.append(block)
        else:
            mismatched.append(block)
    covered = {index + 1 for index in golden}
    uncovered = tuple(b for b, v in sorted(measured.items()) if b not in covered and any(v))
    return MeasurementMatch(
        matched=tuple(matched),
        mismatched=tuple(mismatched),
        uncovered=uncovered,
        skipped=tuple(skipped),
        rims=tuple(f"{rim.version} ({rim.digest.hex()[:16]})" for rim in rims),
    )


def _parse(xml: bytes) -> etree._Element:
    data = bytes(xml)
    if len(data) > MAX_RIM_SIZE:
        raise ParseError("nvidia.rim.size", expected=f"<= {MAX_RIM_SIZE} bytes", actual=len(data))
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )
    try:
        tree = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError as err:
        raise ParseError("nvidia.rim.xml", f"not well-formed XML: {err}") from err
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ParseError("nvidia.rim.doctype", "a DTD is never accepted", actual="DOCTYPE")
    root = tree.getroot()
    if root.tag != f"{{{SWID_NS}}}SoftwareIdentity":
        raise ParseError(
            "nvidia.rim.root", expected="SWID SoftwareIdentity", actual=str(root.tag)[:80]
        )
    for element in root.iter():
        if not isinstance(element.tag, str):
            raise ParseError("nvidia.rim.xml", "comments, PIs and entities are not accepted")
        if any(name.startswith(f"{{{XML_NS}}}") for name in element.attrib):
            raise ParseError(
                "nvidia.rim.c14n", "xml:* attributes (C14N 1.1 differs from 1.0 on them)"
            )
    return root


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _one(parent: etree._Element, tag: str, check: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise ParseError(check, f"expected exactly one {tag.split('}')[-1]}", actual=len(found))
    return found[0]


def _algorithm(parent: etree._Element, name: str, expected: str) -> None:
    actual = _one(parent, f"{{{DSIG_NS}}}{name}", f"nvidia.rim.{name.lower()}").get("Algorithm")
    if actual != expected:
        raise ParseError(f"nvidia.rim.{name.lower()}", expected=expected, actual=actual)


def _text(parent: etree._Element, name: str) -> str:
    return _one(parent, f"{{{DSIG_NS}}}{name}", f"nvidia.rim.{name.lower()}").text or ""


def _b64(text: str, check: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ParseError(check, "not base64") from err


def _resources(payload: etree._Element) -> tuple[RimResource, ...]:
    out: list[RimResource] = []
    seen: set[int] = set()
    for element in payload.iterfind(f"{{{SWID_NS}}}Resource"):
        try:
            index = int(element.get("index", ""))
            count = int(element.get("alternatives", ""))
        except ValueError as err:
            raise ParseError("nvidia.rim.resource", "index/alternatives not integers") from err
        active_text = element.get("active")
        if active_text not in ("True", "False") or index in seen or not 0 <= index < 255:
            raise ParseError(
                "nvidia.rim.resource", f"resource {index}: bad or repeated", actual=active_text
            )
        if not 1 <= count <= MAX_ALTERNATIVES or element.get("size") != "48":
            raise ParseError(
                "nvidia.rim.resource",
                f"resource {index}: alternatives/size",
                expected=f"1..{MAX_ALTERNATIVES} SHA-384 values",
                actual=f"{count} of size {element.get('size')}",
            )
        values = []
        for k in range(count):
            text = element.get(f"{{{HASH_NS}}}Hash{k}")
            check = f"nvidia.rim.resource.{index}.Hash{k}"
            value = parse_hex(text, check, size=48, error=ParseError)
            values.append(value)
        seen.add(index)
        out.append(
            RimResource(index, active_text == "True", tuple(values), element.get("name", ""))
        )
        if len(out) > MAX_RESOURCES:
            raise ParseError("nvidia.rim.resource", expected=f"<= {MAX_RESOURCES}")
    return tuple(out)
