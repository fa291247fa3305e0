"""Peer timing harness for bench/attestation_snp.py, run by the peers' own Python.

Reads ``[cases, rounds]`` as JSON on stdin (hex report, VEK, ASK and ARK DER per case)
and prints, per case, the median seconds of: the bare ECDSA floor measured in this
process, omne-attest's ``verify`` and sev-attest-tool's ``verify_attestation_report``,
or "n/a: <why>" where a peer cannot check that report. Not imported by tcme.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
import warnings
from collections.abc import Callable

# Run as a script from bench/, so the shared stdlib-only helper is importable.
from _common import interleaved_medians
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# The peers load AMD's serial-0 VCEKs without filtering the deprecation warning.
warnings.simplefilter("ignore")


def sev_tool_json(raw: bytes) -> str:
    """virtee/sev's serde JSON of the (v2-layout) report, the input sev-attest-tool takes."""

    def tcb(o: int) -> dict:
        b = raw[o : o + 8]
        return {
            "bootloader": b[0],
            "tee": b[1],
            "_reserved": list(b[2:6]),
            "snp": b[6],
            "microcode": b[7],
        }

    def u32(o: int) -> int:
        return struct.unpack_from("<I", raw, o)[0]

    def u64(o: int) -> int:
        return struct.unpack_from("<Q", raw, o)[0]

    def span(a: int, b: int) -> list[int]:
        return list(raw[a:b])

    return json.dumps(
        {
            "version": u32(0),
            "guest_svn": u32(4),
            "policy": u64(8),
            "family_id": span(0x10, 0x20),
            "image_id": span(0x20, 0x30),
            "vmpl": u32(0x30),
            "sig_algo": u32(0x34),
            "current_tcb": tcb(0x38),
            "plat_info": u64(0x40),
            "_author_key_en": u32(0x48),
            "_reserved_0": u32(0x4C),
            "report_data": span(0x50, 0x90),
            "measurement": span(0x90, 0xC0),
            "host_data": span(0xC0, 0xE0),
            "id_key_digest": span(0xE0, 0x110),
            "author_key_digest": span(0x110, 0x140),
            "report_id": span(0x140, 0x160),
            "report_id_ma": span(0x160, 0x180),
            "reported_tcb": tcb(0x180),
            "_reserved_1": span(0x188, 0x1A0),
            "chip_id": span(0x1A0, 0x1E0),
            "committed_tcb": tcb(0x1E0),
            "current_build": raw[0x1E8],
            "current_minor": raw[0x1E9],
            "current_major": raw[0x1EA],
            "_reserved_2": raw[0x1EB],
            "committed_build": raw[0x1EC],
            "committed_minor": raw[0x1ED],
            "committed_major": raw[0x1EE],
            "_reserved_3": raw[0x1EF],
            "launch_tcb": tcb(0x1F0),
            "_reserved_4": span(0x1F8, 0x2A0),
            "signature": {
                "r": span(0x2A0, 0x2E8),
                "s": span(0x2E8, 0x330),
                "_reserved": span(0x330, 0x4A0),
            },
        }
    )


def why(err: BaseException) -> str:
    text = (str(err).splitlines() or [type(err).__name__])[0]
    inner = re.search(r'error: "([^"]+)"', text)  # a Rust panic wraps the real message
    return "n/a: " + (inner.group(1) if inner else text)[:70]


def time_case(case: dict, rounds: int) -> dict:
    raw = bytes.fromhex(case["raw"])
    vek = bytes.fromhex(case["vek_der"])
    ask = bytes.fromhex(case["ask_der"])
    ark = bytes.fromhex(case["ark_der"])
    key = x509.load_der_x509_certificate(vek).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # a VCEK/VLEK is P-384
    sig = encode_dss_signature(
        int.from_bytes(raw[0x2A0:0x2E8], "little"), int.from_bytes(raw[0x2E8:0x330], "little")
    )
    algorithm = ec.ECDSA(hashes.SHA384())

    def floor() -> None:
        key.verify(sig, raw[:0x2A0], algorithm)

    funcs: list[Callable[[], object]] = [floor]
    names = ["floor"]
    result: dict = {}
    try:
        import omne_attest

        pin = hashlib.sha256(ark).digest()
        policy = omne_attest.Policy(reject_debug=False, max_vmpl=3)

        def omne() -> None:
            omne_attest.verify(raw, vek, ask, ark, pin, policy)

        omne()
        funcs.append(omne)
        names.append("omne-attest")
    except BaseException as err:  # the peer cannot check this report
        result["omne-attest"] = why(err)
    try:
        import sev_attest_tool

        document = sev_tool_json(raw)

        def sev_tool() -> None:
            sev_attest_tool.verify_attestation_report(document, vek)

        sev_tool()
        funcs.append(sev_tool)
        names.append("sev-attest-tool")
    except BaseException as err:  # a Rust panic (PanicException) is a BaseException
        result["sev-attest-tool"] = why(err)
    result.update(zip(names, interleaved_medians(funcs, rounds), strict=True))
    return result


def main() -> None:
    cases, rounds = json.load(sys.stdin)
    json.dump({case["name"]: time_case(case, rounds) for case in cases}, sys.stdout)


if __name__ == "__main__":
    main()
