"""Benchmark: a whole two-party session vs. the bare llama.cpp call it wraps.

Columns, all in one process and one run, on the same loaded model:

* ``bare llama_cpp``: ``llama.create_chat_completion`` with the session's exact
  messages, GBNF grammar (compiled per call, as the enclave does), temperature 0,
  seed and token budget: what an application without tcme would run. Each call
  starts from ``llama.reset()`` (no reuse of the last prompt's prefix, no wipe) on
  a fresh thread, as the enclave runs its model call.
* ``tcme session``: CreateSession, then two parties in parallel (own gRPC client
  each) doing Attest + verify, SubmitInput (HPKE seal, signature) and GetResult
  (open, receipt verify), over real sockets: party -> host proxy (TCP loopback)
  -> enclave (Unix socket, as in ``make demo``), SIMULATED SEV-SNP evidence.
* ``attest+verify``: one party's Attest call through the proxy plus the full
  verification (chain, policy, REPORT_DATA binding, model, contract), loopback.

Rounds are interleaved (bare, session, bare, session, ...) so drift and load on a
shared machine hit both columns alike. Writes the "Session" section of
docs/benchmarks.md only with --write.

    python bench/session.py [--rounds 100] [--attest-rounds 200] [--model file.gguf] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/session.py:begin -->", "<!-- bench/session.py:end -->"
TEMPLATE = ROOT / "examples" / "millionaires" / "contract.toml"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def find_model(given: str | None) -> Path:
    if given:
        return Path(given)
    env = os.environ.get("TCME_MODEL")
    if env:
        return Path(env)
    found = sorted((ROOT / "models").glob("*.gguf"))
    if not found:
        sys.exit("bench/session.py: no model: run `make model` or pass --model FILE.gguf")
    return found[0]


class TimedRunner:
    """The enclave's runner, timed: splits a session into model time and tcme time."""

    def __init__(self, run) -> None:
        self._run = run
        self.last_ms = 0.0

    def __call__(self, contract, values):
        t0 = time.perf_counter()
        try:
            return self._run(contract, values)
        finally:
            self.last_ms = (time.perf_counter() - t0) * 1e3


def build_stack(model: Path, work: Path, n_ctx: int):
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.inference import Inference
    from enclave.model_loader import load_verified_model
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from host.server import create_server as create_host_server
    from tcme.model import ModelVerifier, sign_model
    from tcme.model.keys import generate_signing_key
    from tcme.serving.limits import ListenerLimits

    private, public = generate_signing_key(work / "key")
    signature = work / "model.sig"
    sign_model(model, signature, private_key=private)
    loaded = load_verified_model(
        model, signature, ModelVerifier.public_key(public), n_ctx=n_ctx, verbose=False
    )
    provider = SimulatedSnpProvider(work / "sim")
    runner = TimedRunner(Inference(loaded.llama).run)
    enclave = Enclave(provider=provider, model=loaded.identity, runner=runner)
    # The same links as `make demo`: enclave on a Unix socket, proxy on TCP loopback.
    enclave_address = f"unix:{work / 'enclave.sock'}"
    server, _ = create_enclave_server(enclave_address, enclave)
    server.start()
    # Every party of every round calls from this one address: lift the per-peer pacing
    # (tcme.serving.limits), which would otherwise be what the bench measures.
    unpaced = ListenerLimits(call_rate_per_peer=1e6, call_burst_per_peer=10**6)
    proxy, proxy_port = create_host_server(
        "127.0.0.1:0", enclave_address, health_interval=5, limits=unpaced
    )
    proxy.start()
    target = f"127.0.0.1:{proxy_port}"
    return loaded, enclave, server, proxy, target, provider.ark_sha256, runner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="sessions (and bare calls)")
    parser.add_argument("--attest-rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", help="GGUF (default: models/*.gguf or $TCME_MODEL)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="idle seconds before each column (idle llama.cpp threads wake slowly: keep 0)",
    )
    parser.add_argument(
        "--bare-main-thread",
        action="store_true",
        help="run the bare call on the main thread (default: a fresh thread per call, as the "
        "enclave runs each session's model call; see docs/benchmarks.md before using this)",
    )
    parser.add_argument(
        "--write", action="store_true", help="update the Session section of docs/benchmarks.md"
    )
    args = parser.parse_args()

    import hashlib
    import random

    from llama_cpp import LlamaGrammar

    from attestation.policy import simulated_policy
    from attestation.snp.simulate import DEFAULT_MEASUREMENT
    from enclave.inference import erase_state, grammar_for, messages_for
    from enclave.server import shutdown
    from tcme.client import Party, PartyPolicy, TcmeClient
    from tcme.contract import load_contract_bytes
    from tcme.wire import PartyKeys, parse_contract

    model = find_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="tcme-bench-"))
    loaded, enclave, server, proxy, target, ark, runner = build_stack(model, work, args.n_ctx)
    keys = {name: PartyKeys.generate() for name in ("alice", "bob")}
    contract = load_contract_bytes(TEMPLATE, keys=keys)
    parsed = parse_contract(contract)
    policy = PartyPolicy.from_dict(
        {
            **simulated_policy(ark, DEFAULT_MEASUREMENT),
            "model": {"root_digest": loaded.identity.root_digest, "signer": loaded.identity.signer},
            "contract": {"digest": hashlib.sha256(contract).hexdigest()},
        }
    )
    clients = {name: TcmeClient(target) for name in keys}
    parties = {name: Party(name, keys[name], policy, clients[name]) for name in keys}
    rng = random.Random(7)
    llama = loaded.llama
    output = parsed.outputs[0]

    def bare_call(values: dict[str, int]) -> str:
        # Exactly the enclave's call (enclave/inference.py), without tcme around it.
        # reset() makes llama-cpp-python evaluate the whole prompt (no reuse of the last
        # call's prefix), as the enclave does; it wipes nothing, as an application would.
        llama.reset()
        response = llama.create_chat_completion(
            messages=messages_for(parsed, values),
            grammar=LlamaGrammar.from_string(grammar_for(output), verbose=False),
            temperature=0.0,
            seed=parsed.decoding.seed,
            max_tokens=parsed.decoding.max_tokens,
        )
        return response["choices"][0]["message"]["content"]

    def bare(values: dict[str, int]) -> str:
        if args.bare_main_thread:
            return bare_call(values)
        # Like the enclave, which runs each session's model call on a fresh thread. Both
        # columns then use llama.cpp's OpenMP threads the same way: a thread's worker team
        # lives as long as the thread, and a main-thread team left spinning between bare
        # calls slows the enclave's calls in this shared process (docs/benchmarks.md).
        box: list[str] = []
        thread = threading.Thread(target=lambda: box.append(bare_call(values)))
        thread.start()
        thread.join()
        return box[0]

    pool = ThreadPoolExecutor(max_workers=2)

    def session(values: dict[str, int]) -> str:
        session_id = (
            clients["alice"]
            .create_session(contract, proposer="alice", keys=keys["alice"])
            .session_id
        )
        futures = [
            pool.submit(parties[n].run, session_id, {f"{n}_wealth": values[f"{n}_wealth"]})
            for n in ("alice", "bob")
        ]
        answers = {f.result()[1].outputs["richer"] for f in futures}
        assert len(answers) == 1
        return answers.pop()

    bare_ms: list[float] = []
    session_ms: list[float] = []
    inner_ms: list[float] = []
    agree = 0
    try:
        for i in range(args.warmup + args.rounds):
            values = {"alice_wealth": rng.randrange(10**9), "bob_wealth": rng.randrange(10**9)}
            time.sleep(args.pause)
            t0 = time.perf_counter()
            a = bare(values)
            t1 = time.perf_counter()
            # Untimed: in the enclave nothing else uses the model between sessions, so
            # the session must find the context as the last session left it: erased.
            erase_state(llama)
            time.sleep(args.pause)
            t1 = time.perf_counter()
            b = session(values)
            t2 = time.perf_counter()
            if i >= args.warmup:
                bare_ms.append((t1 - t0) * 1e3)
                session_ms.append((t2 - t1) * 1e3)
                inner_ms.append(runner.last_ms)
                agree += a == b
        attest_ms = []
        session_id = (
            clients["alice"]
            .create_session(contract, proposer="alice", keys=keys["alice"])
            .session_id
        )
        for i in range(args.warmup + args.attest_rounds):
            t0 = time.perf_counter()
            parties["alice"].attest(session_id)
            if i >= args.warmup:
                attest_ms.append((time.perf_counter() - t0) * 1e3)
        clients["alice"].abort(session_id, "alice", keys["alice"])
    finally:
        pool.shutdown()
        for client in clients.values():
            client.close()
        proxy.stop(0)
        shutdown(server, enclave, grace=0)
        loaded.close()
        shutil.rmtree(work, ignore_errors=True)

    overhead = [s - m for s, m in zip(session_ms, inner_ms, strict=True)]
    rows = [
        ("bare llama_cpp call", bare_ms, None),
        ("tcme two-party session", session_ms, bare_ms),
        ("  of which: model call in the enclave", inner_ms, bare_ms),
        ("  of which: everything else (tcme)", overhead, None),
    ]
    lines = [
        "| column | p50 | p95 | ratio p50 | ratio p95 |",
        "|---|---|---|---|---|",
    ]
    for name, samples, base in rows:
        p50, p95 = statistics.median(samples), pct(samples, 0.95)
        r50 = f"{p50 / statistics.median(base):.3f}" if base else "-"
        r95 = f"{p95 / pct(base, 0.95):.3f}" if base else "-"
        lines.append(f"| {name} | {p50:.1f} ms | {p95:.1f} ms | {r50} | {r95} |")
    a50, a95 = statistics.median(attest_ms), pct(attest_ms, 0.95)
    attest_table = [
        "| per party | p50 | p95 | target |",
        "|---|---|---|---|",
        f"| Attest + verify (loopback, via proxy) | {a50:.2f} ms | {a95:.2f} ms | < 10 ms p50 |",
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    context = (
        f"{args.rounds} sessions and {args.rounds} bare calls, interleaved; "
        f"{args.attest_rounds} attestations; model `{model.name}`; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the end; the bare call and the session agreed on "
        f"{agree}/{args.rounds} answers (same prompt, grammar, seed)."
    )
    print("\n".join(lines))
    print()
    print("\n".join(attest_table))
    print()
    print(context)
    if args.write:
        write_doc(lines, attest_table, context)
        print(f"\nwrote the Session section of {DOC.relative_to(ROOT)}")
    return 0


COLUMNS = (
    (
        "bare llama_cpp call",
        "`llama.create_chat_completion` with the session's messages, GBNF grammar (compiled "
        "per call), temperature 0, seed and token budget: the enclave's exact call, no tcme",
    ),
    (
        "tcme two-party session",
        "CreateSession; then alice and bob in parallel, each with its own gRPC client through "
        "the host proxy: Attest + verify, HPKE-seal + sign + SubmitInput, GetResult + open + "
        "receipt verify (SIMULATED SEV-SNP evidence)",
    ),
    (
        "of which: model call / everything else",
        "the session split by timing the enclave's model call itself (same call as the bare "
        'column); "everything else" is what tcme adds',
    ),
    (
        "Attest + verify",
        "one party's Attest through the proxy plus the whole verification: chain, policy, "
        "REPORT_DATA binding, model and contract checks",
    ),
)

SECTION_HEAD = "\n".join(
    [
        "## Session",
        "",
        "`python bench/session.py [--rounds N] [--attest-rounds N]` (also run by `make bench`)",
        "compares a whole two-party session against the bare llama.cpp call it wraps, in one",
        "process and one run, on the same loaded model:",
        "",
        "| column | what it runs |",
        "|---|---|",
        *(f"| {name} | {text} |" for name, text in COLUMNS),
        "",
        "Bare calls and sessions alternate round by round, back to back. Each bare call",
        "starts from `llama.reset()` (the whole prompt is evaluated, as in the enclave; nothing",
        "is wiped) and runs on a fresh thread, as the enclave runs each session's model call.",
        "After it, untimed, the context is erased, so every session finds the model as the",
        "previous session left it. Parties, proxy and enclave share one process here. Targets:",
        "session p50 at most 1.05x the bare call at the default model; Attest + verify under",
        "10 ms p50 on loopback.",
        "",
    ]
)


def write_doc(lines: list[str], attest_table: list[str], context: str) -> None:
    body = "\n".join(
        [BEGIN, "Results of one run:", "", *lines, "", *attest_table, "", context, END]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: body, text, flags=re.S)
    elif "## Session" in text:
        head, _, rest = text.partition("## Session")
        nxt = rest.find("\n## ")
        tail = rest[nxt:] if nxt >= 0 else "\n"
        text = head + SECTION_HEAD + "\n" + body + "\n" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION_HEAD + "\n" + body + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
