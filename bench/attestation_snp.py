"""SEV-SNP report verification: tcme (chain cold and cached) vs. the bare ECDSA floor and
independent verifiers from PyPI, on the real vectors.

For every real report, in one run:

* floor: one bare ECDSA P-384/SHA-384 verify of the report with ``cryptography`` (the key
  already loaded, the signature already DER-encoded): the least any verifier must do.
* tcme warm: ``verify_evidence`` (parse, chain, TCB/hwID binding, signature, policy) with
  the certificate chain already verified and cached. Target: <= 1.2 x floor.
* tcme cold: the same after ``clear_caches()`` every call: certificates parsed and the
  VEK's RSA-PSS signature checked again (the bundled AMD anchors stay loaded: they are
  verified once per process). Target: <= 2 x floor.
* peers, each in its own virtual environment and process (they are not tcme
  dependencies): omne-attest (pure Python, full chain each call) and sev-attest-tool
  (Rust, embedded Genoa chain, JSON input). A peer that cannot check a report says why.
  The peer process also times the same floor, so the two processes can be compared.

    python bench/attestation_snp.py [--rounds N] [--peer-python PATH | --no-peers] [--markdown]

Peers are installed on first use into $TCME_BENCH_PEERS (default ~/.cache/tcme/bench-peers)
from PyPI; offline, the table compares against the floor only and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import venv
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import interleaved_medians, vectors_root  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from attestation.inputs import read_certs  # noqa: E402
from attestation.policy import SKIP, Policy, SnpPolicy  # noqa: E402
from attestation.snp import _x509  # noqa: E402
from attestation.snp.abi import SIGNED_SIZE, parse_report  # noqa: E402
from attestation.snp.roots import amd_roots  # noqa: E402
from attestation.snp.verify import clear_caches, load_cert_bundle  # noqa: E402
from attestation.tee import Tee  # noqa: E402
from attestation.verifier import SnpInputs, verify_evidence  # noqa: E402

REPORTS = (
    "gosevguest_milan_v2",
    "virtee_milan_v2",
    "trustee_milan_v2_vcek",
    "trustee_milan_v3_vlek",
    "ms_milan_v3",
    "ms_genoa_v3",
    "ms_turin_v5",
    "azure_genoa_v3",
)
PEERS = {"omne-attest": "omne-attest==0.1.0", "sev-attest-tool": "sev-attest-tool==0.2.4"}
WARM_TARGET, COLD_TARGET = 1.2, 2.0
# gosevguest's report allows debugging; the bench measures verification, not that verdict.
# Authenticity and the [snp] checks; the vectors come from many guests, so no measurement pin.
POLICY = Policy(
    accept=(Tee.SEV_SNP,), tables={"snp": SnpPolicy(allow_debug=True, allowed_measurements=SKIP)}
)


def load_case(root: Path, name: str) -> dict:
    folder = root / "snp" / name
    raw = (folder / "report.bin").read_bytes()
    certs = read_certs(folder)
    bundle = load_cert_bundle(certs)
    report = parse_report(raw)
    product = report.cpuid_product or _x509.common_name(bundle.vek.issuer).split("-")[-1]
    chain = amd_roots(product)
    ask = chain.intermediate("VLEK" if bundle.vek_kind == "VLEK" else "VCEK")
    return {
        "name": name,
        "raw": raw,
        "certs": certs,
        "at": bundle.vek.not_valid_before_utc + timedelta(days=1),
        "product": product,
        "kind": bundle.vek_kind,
        "key": bundle.vek.public_key(),
        "signature": encode_dss_signature(
            int.from_bytes(report.signature_r, "little"),
            int.from_bytes(report.signature_s, "little"),
        ),
        "vek_der": bundle.vek.public_bytes(Encoding.DER),
        "ask_der": ask.public_bytes(Encoding.DER),
        "ark_der": chain.ark.public_bytes(Encoding.DER),
    }


def time_tcme(case: dict, rounds: int) -> dict[str, float]:
    raw, certs, at, key, sig = (
        case["raw"],
        case["certs"],
        case["at"],
        case["key"],
        case["signature"],
    )
    signed = raw[:SIGNED_SIZE]
    algorithm = ec.ECDSA(hashes.SHA384())

    def floor() -> None:
        key.verify(sig, signed, algorithm)

    def warm() -> None:
        verify_evidence(raw, policy=POLICY, at=at, inputs=[SnpInputs(certs=certs)])

    def cold() -> None:
        clear_caches()
        verify_evidence(raw, policy=POLICY, at=at, inputs=[SnpInputs(certs=certs)])

    warm()  # it must verify at all before we time it
    f, w, c = interleaved_medians([floor, warm, cold], rounds)
    return {"floor": f, "warm": w, "cold": c}


# -- peers (separate venv and process) -------------------------------------------------

PEER_HARNESS = Path(__file__).with_name("_snp_peers.py")


def peer_python(explicit: str | None) -> tuple[str | None, str]:
    """A Python with the peers installed, creating the venv on first use; (None, why) if not."""
    if explicit:
        return explicit, f"peers from {explicit}"
    home = Path(os.environ.get("TCME_BENCH_PEERS", Path.home() / ".cache" / "tcme" / "bench-peers"))
    python = home / "bin" / "python"
    stamp = home / ".installed"
    if not stamp.exists():
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(home)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", *PEERS.values()],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            return None, f"peers not installable here: {detail.strip().splitlines()[-1:]}"
        stamp.write_text(" ".join(PEERS.values()))
    return str(python), f"peers from {home} ({stamp.read_text()})"


def time_peers(python: str, cases: list[dict], rounds: int) -> dict:
    payload = [
        {k: case[k].hex() for k in ("raw", "vek_der", "ask_der", "ark_der")}
        | {"name": case["name"]}
        for case in cases
    ]
    proc = subprocess.run(
        [python, str(PEER_HARNESS)],
        input=json.dumps([payload, rounds]),
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    return json.loads(proc.stdout)


# -- report ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per side per report")
    parser.add_argument("--peer-python", help="a Python that has the peers installed")
    parser.add_argument("--no-peers", action="store_true", help="compare against the floor only")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown table")
    args = parser.parse_args()
    root = vectors_root()
    if root is None:
        # A benchmark that should run and cannot is a failure, never a quiet skip.
        print(
            "SEV-SNP bench cannot run: vectors not found (set TCME_VECTORS or ../shared/vectors)",
            file=sys.stderr,
        )
        return 1

    cases = [load_case(root, name) for name in REPORTS]
    ours = {case["name"]: time_tcme(case, args.rounds) for case in cases}
    peers: dict = {}
    peer_note = "peers skipped (--no-peers)"
    if not args.no_peers:
        python, peer_note = peer_python(args.peer_python)
        if python:
            try:
                peers = time_peers(python, cases, args.rounds)
            except (OSError, subprocess.SubprocessError, ValueError) as err:
                peer_note = f"peer run failed: {err}"

    lines = [
        f"SEV-SNP verification, median of {args.rounds} interleaved calls per column, "
        f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {peer_note}.",
        "",
        "| report | product/key | floor ms | tcme warm ms (x floor) | tcme cold ms (x floor) "
        "| peer floor ms | omne-attest ms | sev-attest-tool ms | tcme cold / fastest peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    warm_ratios, cold_ratios, vs_peer = [], [], []
    for case in cases:
        o = ours[case["name"]]
        p = peers.get(case["name"], {})
        warm_ratios.append(o["warm"] / o["floor"])
        cold_ratios.append(o["cold"] / o["floor"])
        cells = []
        timed = {}
        for peer in PEERS:
            value = p.get(peer)
            if isinstance(value, float):
                # Normalise by the floor each process measured itself.
                timed[peer] = value / p["floor"] * o["floor"]
                cells.append(ms(value))
            else:
                cells.append(value or "-")
        if timed:
            fastest = min(timed.values())
            vs_peer.append(o["cold"] / fastest)
            versus = f"{o['cold'] / fastest:.2f}"
        else:
            versus = "-"
        lines.append(
            f"| {case['name']} | {case['product']}/{case['kind']} | {ms(o['floor'])} "
            f"| {ms(o['warm'])} ({o['warm'] / o['floor']:.2f}) "
            f"| {ms(o['cold'])} ({o['cold'] / o['floor']:.2f}) "
            f"| {ms(p['floor']) if 'floor' in p else '-'} | {' | '.join(cells)} | {versus} |"
        )
    lines += [
        "",
        f"median warm / floor = {statistics.median(warm_ratios):.2f} (target <= {WARM_TARGET}); "
        f"median cold / floor = {statistics.median(cold_ratios):.2f} (target <= {COLD_TARGET})"
        + (
            f"; median tcme cold / fastest peer = {statistics.median(vs_peer):.2f} (target <= 1.00)"
            if vs_peer
            else ""
        ),
    ]
    print("\n".join(lines))
    if not args.markdown:
        # The TDX half of the attestation benchmark (ours vs. dcap-qvl direct).
        print()
        import attestation_tdx

        return attestation_tdx.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
