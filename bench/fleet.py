"""Benchmark: sessions per second through one host proxy with 1, 2 and 4 enclaves.

Every enclave is its own process running the real enclave code (keys, claims,
SIMULATED SEV-SNP evidence, sessions, HPKE, receipts) with a STAND-IN model of
fixed cost: each model call holds the enclave's one model for ``--cost-ms``
(sleeping, as a model on its own cores or accelerator would leave this
machine's two CPUs to the rest) and answers "first". One enclave therefore
finishes at most 1000/cost sessions per second, whatever the proxy does.

Configurations, measured in one run and interleaved round by round:

* ``direct``: the parties talk to one enclave with no proxy (the baseline);
* ``proxy xK``: one real ``tcme host serve`` process in front of K enclaves.

For each: completed two-party sessions per second with ``--concurrency``
sessions in flight (CreateSession, then both parties Attest + verify,
SubmitInput, GetResult + verify), its ratio to ``direct``, and the proxy
process's own CPU time per forwarded call (from /proc, divided by the calls the
clients made through it). Writes the "Fleet" section of docs/benchmarks.md
only with --write (`make bench BENCH_FLAGS=--write`).

    python bench/fleet.py [--cost-ms 200] [--sessions 40] [--rounds 3] [--concurrency 8] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MILLIONAIRES = ROOT / "examples" / "millionaires" / "contract.toml"
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/fleet.py:begin -->", "<!-- bench/fleet.py:end -->"
SECTION_HEAD = "## Fleet"
REPLICAS = (1, 2, 4)
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 5.0


# -- the enclave process (stand-in model) ---------------------------------------------------


@dataclass(frozen=True)
class StandInIdentity:
    """Claims' model identity for the stand-in (no GGUF is loaded; the policy pins this)."""

    root_digest: str = "5a" * 32
    signer: str = "bench stand-in model (fixed cost, no weights)"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def serve_enclave(listen: str, ready: Path, sim_dir: Path, cost: float) -> int:
    """Run one enclave whose model is the fixed-cost stand-in, until SIGTERM."""
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.runtime import Enclave
    from enclave.server import create_server, shutdown

    model_lock = threading.Lock()  # one model per enclave: calls queue, as with llama.cpp

    def stand_in(contract: object, values: object) -> dict[str, str]:
        with model_lock:
            time.sleep(cost)
        return {"richer": "first"}

    enclave = Enclave(
        provider=SimulatedSnpProvider(sim_dir),
        model=StandInIdentity(),
        runner=stand_in,
        max_sessions=256,
    )
    server, port = create_server(listen, enclave)
    server.start()
    ready.write_text(f"127.0.0.1:{port}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    shutdown(server, enclave, grace=0)
    return 0


# -- the load --------------------------------------------------------------------------


class CallCounter:
    """A client interceptor counting the calls that leave this process."""

    def __init__(self) -> None:
        import grpc

        self.count = 0
        self._lock = threading.Lock()

        counter = self

        class _Interceptor(grpc.UnaryUnaryClientInterceptor):
            def intercept_unary_unary(self, continuation, details, request):
                with counter._lock:
                    counter.count += 1
                return continuation(details, request)

        self.interceptor = _Interceptor()


class Load:
    """Two parties and their sessions against one target (a proxy or an enclave)."""

    def __init__(self, sim_ark: str) -> None:
        from attestation.policy import simulated_policy
        from attestation.snp.simulate import DEFAULT_MEASUREMENT
        from tcme.client import PartyPolicy
        from tcme.contract import load_contract_bytes
        from tcme.wire import PartyKeys

        self.keys = {name: PartyKeys.generate() for name in ("alice", "bob")}
        # The example every party flow uses, filled by the one contract loader.
        self.contract = load_contract_bytes(MILLIONAIRES, keys=self.keys)
        import hashlib

        identity = StandInIdentity()
        self.policy = PartyPolicy.from_dict(
            {
                **simulated_policy(sim_ark, DEFAULT_MEASUREMENT),
                "model": {"root_digest": identity.root_digest, "signer": identity.signer},
                "contract": {"digest": hashlib.sha256(self.contract).hexdigest()},
            }
        )
        self.counter = CallCounter()

    def client(self, target: str):
        import grpc

        from tcme.client import TcmeClient

        # Its own connection, as a separate party has (grpc would otherwise share one
        # subchannel per target across the process, and meet the per-connection limit).
        options = [("grpc.use_local_subchannel_pool", 1)]
        channel = grpc.intercept_channel(
            grpc.insecure_channel(target, options=options), self.counter.interceptor
        )
        return TcmeClient(target, channel=channel, timeout=60)

    def session(self, target: str) -> None:
        from tcme.client import Party

        with self.client(target) as client:
            session_id = client.create_session(
                self.contract, proposer="alice", keys=self.keys["alice"]
            ).session_id

        def one(name: str) -> None:
            values = {"alice": {"alice_wealth": 5}, "bob": {"bob_wealth": 3}}[name]
            with self.client(target) as client:
                Party(name, self.keys[name], self.policy, client).run(
                    session_id, values, timeout=60
                )

        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(one, "alice"), pool.submit(one, "bob")]:
                future.result()

    def rate(self, target: str, sessions: int, concurrency: int) -> tuple[float, int]:
        """Sessions per second over ``sessions`` sessions; and the calls they made."""
        before = self.counter.count
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(self.session, target) for _ in range(sessions)]:
                future.result()
        return sessions / (time.perf_counter() - start), self.counter.count - before


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- orchestration ---------------------------------------------------------------------


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _wait_file(path: Path, process: subprocess.Popen, what: str) -> str:
    deadline = time.monotonic() + 120
    while not (path.exists() and path.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)
    return path.read_text().strip()


def _serving(target: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost-ms", type=float, default=1000.0, help="stand-in model call")
    parser.add_argument("--sessions", type=int, default=24, help="sessions per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--concurrency", type=int, default=12, help="sessions in flight")
    parser.add_argument(
        "--write", action="store_true", help="update the Fleet section of docs/benchmarks.md"
    )
    parser.add_argument("--serve-enclave", nargs=3, metavar=("LISTEN", "READY", "SIMDIR"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve_enclave:
        listen, ready, sim_dir = args.serve_enclave
        return serve_enclave(listen, Path(ready), Path(sim_dir), args.cost_ms / 1000)

    from attestation.providers.simulated import SimulatedSnpProvider

    work = Path(tempfile.mkdtemp(prefix="tcme-bench-fleet."))
    processes: list[subprocess.Popen] = []
    try:
        sim_ark = SimulatedSnpProvider(work / "sim").ark_sha256
        enclaves = []
        for i in range(max(REPLICAS)):
            ready = work / f"enclave{i}.addr"
            process = _spawn(
                [__file__, "--cost-ms", str(args.cost_ms), "--serve-enclave",
                 "127.0.0.1:0", str(ready), str(work / "sim")],
                work / f"enclave{i}.log",
            )  # fmt: skip
            processes.append(process)
            enclaves.append(_wait_file(ready, process, f"enclave{i}"))
        proxies: dict[int, tuple[str, subprocess.Popen]] = {}
        for k in REPLICAS:
            port_file = work / f"proxy{k}.port"
            backends = [a for target in enclaves[:k] for a in ("--enclave", target)]
            process = _spawn(
                ["-m", "tcme", "host", "serve", "--listen", "127.0.0.1:0", *backends,
                 "--port-file", str(port_file)],
                work / f"proxy{k}.log",
            )  # fmt: skip
            processes.append(process)
            target = "127.0.0.1:" + _wait_file(port_file, process, f"proxy x{k}")
            deadline = time.monotonic() + 60
            while not _serving(target):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"proxy x{k} never became SERVING")
                time.sleep(0.1)
            proxies[k] = (target, process)

        load = Load(sim_ark)
        for target in [enclaves[0], *(t for t, _ in proxies.values())]:
            for _ in range(2):  # warm-up: channels, imports, caches
                load.session(target)
        # What each idle proxy spends probing its enclaves, subtracted from the load below.
        idle_start = {k: cpu_seconds(p.pid) for k, (_, p) in proxies.items()}
        time.sleep(IDLE_SECONDS)
        idle = {k: (cpu_seconds(p.pid) - idle_start[k]) / IDLE_SECONDS
                for k, (_, p) in proxies.items()}  # fmt: skip
        rates: dict[str, list[float]] = {"direct": [], **{f"proxy x{k}": [] for k in REPLICAS}}
        cpu_per_call: dict[str, list[float]] = {f"proxy x{k}": [] for k in REPLICAS}
        calls_per_session: list[float] = []
        for _ in range(args.rounds):
            rate, calls = load.rate(enclaves[0], args.sessions, args.concurrency)
            rates["direct"].append(rate)
            calls_per_session.append(calls / args.sessions)
            for k in REPLICAS:
                target, process = proxies[k]
                cpu = cpu_seconds(process.pid)
                start = time.perf_counter()
                rate, calls = load.rate(target, args.sessions, args.concurrency)
                window = time.perf_counter() - start
                cpu = cpu_seconds(process.pid) - cpu - idle[k] * window
                rates[f"proxy x{k}"].append(rate)
                cpu_per_call[f"proxy x{k}"].append(max(cpu, 0.0) / calls)
                calls_per_session.append(calls / args.sessions)
        report(args, rates, cpu_per_call, statistics.median(calls_per_session), idle)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    cpu_per_call: dict[str, list[float]],
    calls_per_session: float,
    idle: dict[int, float],
) -> None:
    direct = statistics.median(rates["direct"])
    ceiling = 1000 / args.cost_ms
    lines = [
        "| configuration | sessions/s (median) | x direct | x one enclave's ceiling | "
        "proxy CPU per forwarded call |",
        "|---|---|---|---|---|",
        f"| direct (no proxy), 1 enclave | {direct:.2f} | 1.00 | {direct / ceiling:.2f} | - |",
    ]
    for k in REPLICAS:
        name = f"proxy x{k}"
        rate = statistics.median(rates[name])
        cpu = statistics.median(cpu_per_call[name])
        lines.append(
            f"| one proxy, {k} enclave{'s' if k > 1 else ''} | {rate:.2f} | {rate / direct:.2f} "
            f"| {rate / ceiling:.2f} | {cpu * 1e6:.0f} us |"
        )
    cpu = statistics.median(v for k in REPLICAS for v in cpu_per_call[f"proxy x{k}"])
    calls_per_core = 1 / cpu if cpu else float("inf")
    probing = ", ".join(f"{idle[k] * 1e3:.1f} ms/s with {k}" for k in REPLICAS)
    context = (
        f"Stand-in model: {args.cost_ms:.0f} ms per call (one enclave's ceiling "
        f"{ceiling:.1f} sessions/s); {args.sessions} sessions per measurement, "
        f"{args.concurrency} in flight, median of {args.rounds} interleaved rounds; "
        f"{calls_per_session:.1f} calls per session (CreateSession, then per party Attest, "
        f"SubmitInput and GetResult, with its 'pending' polls). Proxy CPU per call is the "
        f"proxy process's CPU time during the run less what it spends probing when idle "
        f"({probing} enclaves), divided by the calls it forwarded. "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, everything (clients, "
        f"proxy, enclaves) on this machine. At {cpu * 1e6:.0f} us per call one proxy core "
        f"forwards about {calls_per_core:.0f} calls/s, i.e. "
        f"{calls_per_core / calls_per_session:.0f} sessions/s."
    )
    print("\n".join(lines))
    print(context)
    if args.write:
        write_doc(lines, context)


def write_doc(lines: list[str], context: str) -> None:
    body = "\n".join([BEGIN, "Results of one run:", "", *lines, "", context, END])
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION_HEAD + "\n\n" + body + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
