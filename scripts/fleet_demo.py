"""A fleet on one machine: three SIMULATED enclaves behind two host proxies.

    .venv/bin/python scripts/fleet_demo.py            # after `make model`

What it shows, step by step (each printed as it happens):

1. sessions through both proxies at once: every one completes, and they
   spread over the enclaves; each is created through one proxy and run to the
   end by its parties through the other (no state shared between proxies: the
   session id carries its enclave's route tag);
2. one enclave killed (SIGKILL) while its sessions wait for an input: only
   those sessions fail, with UNAVAILABLE naming the enclave that is gone, in
   seconds; sessions on the other enclaves finish, and new ones succeed;
3. one enclave sent SIGTERM while a session is open on it: it takes no new
   session, finishes the open one, then exits 0.

Everything is the real code over real sockets and the real default model;
only the SEV-SNP hardware is simulated (the evidence says so, and the parties'
policies must allow it). ``Fleet`` is also what tests/fleet/test_fleet_e2e.py
drives.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
MILLIONAIRES = REPO / "examples" / "millionaires" / "contract.toml"
sys.path.insert(0, str(REPO))

from tcme.v1 import fleet_pb2, fleet_pb2_grpc  # noqa: E402

START_TIMEOUT = 240.0
RESULT_TIMEOUT = 120.0
ROUTE_SIZE = 4


def _default_model() -> Path:
    env = os.environ.get("TCME_MODEL")
    found = [Path(env)] if env else sorted((REPO / "models").glob("*.gguf"))
    if not found or not found[0].is_file():
        sys.exit("fleet_demo: no model: run `make model` first (or set TCME_MODEL=file.gguf)")
    return found[0]


def _healthy(target: str, service: str = "") -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        except grpc.RpcError:
            return False
    return status.status == health_pb2.HealthCheckResponse.SERVING


@dataclass
class Member:
    """One process of the fleet."""

    name: str
    process: subprocess.Popen
    log: Path
    target: str = ""
    route: bytes = b""

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None


@dataclass
class Fleet:
    """N simulated enclaves (real model) and M host proxies, each its own process."""

    workdir: Path
    model: Path
    enclaves: int = 3
    proxies: int = 2
    probe_seconds: float = 0.2
    drain_seconds: float = 60.0
    members: dict[str, Member] = field(default_factory=dict)
    identity: Any = None
    ark_sha256: str = ""
    measurement: bytes = b""

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> None:
        """Sign the model, start the enclaves, then the proxies; wait until all serve."""
        from attestation.providers.simulated import SimulatedSnpProvider
        from tcme.model import ModelVerifier, sign_model, verify_model
        from tcme.model.keys import generate_signing_key

        private, public = generate_signing_key(self.workdir / "publisher")
        signature = self.workdir / "model.sig"
        sign_model(self.model, signature, private_key=private)
        self.identity = verify_model(self.model, signature, ModelVerifier.public_key(public))
        # One simulated root for the whole fleet (replicas of one platform).
        simulated = SimulatedSnpProvider(self.workdir / "sim")
        self.ark_sha256, self.measurement = simulated.ark_sha256, simulated.measurement
        for i in range(self.enclaves):
            ready = self.workdir / f"enclave{i}.addr"
            self._spawn(
                f"enclave{i}",
                [
                    "enclave", "serve", "--simulated", "--sim-dir", str(self.workdir / "sim"),
                    "--listen", "127.0.0.1:0", "--model", str(self.model),
                    "--signature", str(signature), "--public-key", str(public),
                    "--n-ctx", "1024", "--drain-seconds", str(self.drain_seconds),
                    "--ready-file", str(ready),
                ],
            )  # fmt: skip
        for i in range(self.enclaves):
            member = self.members[f"enclave{i}"]
            ready = self.workdir / f"enclave{i}.addr"
            self._wait(member, lambda ready=ready: ready.exists() and ready.read_text().strip())
            member.target = ready.read_text().strip()
            member.route = self.status(member.target).route
        backends = [arg for i in range(self.enclaves) for arg in
                    ("--enclave", self.members[f"enclave{i}"].target)]  # fmt: skip
        for i in range(self.proxies):
            port_file = self.workdir / f"proxy{i}.port"
            self._spawn(
                f"proxy{i}",
                ["host", "serve", "--listen", "127.0.0.1:0", *backends,
                 "--probe-seconds", str(self.probe_seconds), "--port-file", str(port_file)],
            )  # fmt: skip
        for i in range(self.proxies):
            member = self.members[f"proxy{i}"]
            port_file = self.workdir / f"proxy{i}.port"
            self._wait(member, lambda p=port_file: p.exists() and p.read_text().strip())
            member.target = f"127.0.0.1:{port_file.read_text().strip()}"
            self._wait(member, lambda t=member.target: _healthy(t))

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "tcme", *args],
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.members[name] = Member(name, process, log)

    def _wait(self, member: Member, ready: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if not member.alive:
                raise RuntimeError(f"{member.name} exited:\n{member.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{member.name} did not start in {START_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGKILL whatever still runs (the scenario ends every member it means to end)."""
        for member in self.members.values():
            if member.alive:
                member.process.kill()
            member.process.wait(timeout=30)

    # -- the fleet's state ---------------------------------------------------------------

    @property
    def proxy_targets(self) -> list[str]:
        """Where parties reach each proxy."""
        return [m.target for n, m in self.members.items() if n.startswith("proxy")]

    def enclave(self, index: int) -> Member:
        """Enclave number ``index``."""
        return self.members[f"enclave{index}"]

    def enclave_of(self, session_id: bytes) -> str:
        """The name of the enclave whose route tag starts ``session_id``."""
        for name, member in self.members.items():
            if member.route and session_id[:ROUTE_SIZE] == member.route:
                return name
        raise KeyError(session_id[:ROUTE_SIZE].hex())

    @staticmethod
    def status(target: str) -> fleet_pb2.FleetStatusResponse:
        """An enclave's own Fleet.Status (route, load, draining), asked directly."""
        with grpc.insecure_channel(target) as channel:
            return fleet_pb2_grpc.FleetStub(channel).Status(
                fleet_pb2.FleetStatusRequest(), timeout=5
            )

    def wait_until(self, condition: Any, timeout: float = 30.0) -> bool:
        """Poll ``condition()`` until true or ``timeout``; its last value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    # -- parties -------------------------------------------------------------------------

    def policy(self, contract: bytes) -> Any:
        """A party policy for this fleet: the simulated root, the model, the contract; no key."""
        from attestation.policy import simulated_policy
        from tcme.client import PartyPolicy

        return PartyPolicy.from_dict(
            {
                # One root, one launch measurement for every replica; no key is pinned.
                **simulated_policy(self.ark_sha256, self.measurement),
                "model": {
                    "root_digest": self.identity.root_digest,
                    "signer": self.identity.signer,
                },
                "contract": {"digest": hashlib.sha256(contract).hexdigest()},
            }
        )


@dataclass
class Outcome:
    """How one party's side of one session ended."""

    party: str
    output: str | None = None
    error: Exception | None = None
    seconds: float = 0.0
    finished_at: float = 0.0  # time.monotonic() when this party's flow ended

    @property
    def ok(self) -> bool:
        """True when the party got its output."""
        return self.error is None


class Parties:
    """Two parties (alice, bob) with keys, and the millionaires contract between them."""

    def __init__(self) -> None:
        from tcme.contract import load_contract_bytes
        from tcme.wire import PartyKeys

        self.keys = {name: PartyKeys.generate() for name in ("alice", "bob")}
        # The example every party flow uses, filled by the one contract loader.
        self.contract = load_contract_bytes(MILLIONAIRES, keys=self.keys)

    def create(self, proxy: str) -> bytes:
        """CreateSession through ``proxy``; the session id."""
        from tcme.client import TcmeClient

        with TcmeClient(proxy) as client:
            return client.create_session(
                self.contract, proposer="alice", keys=self.keys["alice"]
            ).session_id

    def run(
        self,
        fleet: Fleet,
        session_id: bytes,
        via: Mapping[str, str],
        *,
        hold_bob: threading.Event | None = None,
        alice_submitted: threading.Event | None = None,
    ) -> dict[str, Outcome]:
        """Both parties' whole flow, concurrently, each through its own proxy (``via``)."""
        from tcme.client import Party, TcmeClient

        policy = fleet.policy(self.contract)
        values = {"alice": {"alice_wealth": 7_000_000}, "bob": {"bob_wealth": 2_000}}

        def one(name: str) -> Outcome:
            start = time.monotonic()
            outcome = Outcome(name)
            try:
                with TcmeClient(via[name]) as client:
                    party = Party(name, self.keys[name], policy, client)
                    if name == "bob" and hold_bob is not None:
                        hold_bob.wait()
                    attestation = party.attest(session_id)
                    submitted = party.submit(attestation, values[name])
                    if name == "alice" and alice_submitted is not None:
                        alice_submitted.set()
                    result = party.result(attestation, submitted.sealed, timeout=RESULT_TIMEOUT)
                    outcome.output = result.outputs.get("richer")
            except Exception as err:
                outcome.error = err
                if name == "alice" and alice_submitted is not None:
                    alice_submitted.set()
            outcome.finished_at = time.monotonic()
            outcome.seconds = outcome.finished_at - start
            return outcome

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {name: pool.submit(one, name) for name in ("alice", "bob")}
            return {name: f.result(timeout=RESULT_TIMEOUT * 2) for name, f in futures.items()}


# -- the scenario, by hand ---------------------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the three steps, printing what happens; 0 when every claim held."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="GGUF (default: models/*.gguf)")
    parser.add_argument("--sessions", type=int, default=6, help="sessions in step 1")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tcme-fleet."))
    fleet = Fleet(workdir, args.model or _default_model())
    parties = Parties()
    status = 0
    try:
        _say("== starting 3 SIMULATED enclaves and 2 host proxies (real model)")
        fleet.start()
        for i in range(fleet.enclaves):
            e = fleet.enclave(i)
            _say(f"   enclave{i} at {e.target}, route tag {e.route.hex()}")
        p0, p1 = fleet.proxy_targets
        _say(f"   proxies at {p0} and {p1}, each forwarding to all three enclaves")

        _say(f"\n== 1. {args.sessions} sessions through both proxies at once")
        with ThreadPoolExecutor(max_workers=args.sessions) as pool:

            def session(k: int) -> tuple[bytes, dict[str, Outcome]]:
                create, run = (p0, p1) if k % 2 == 0 else (p1, p0)
                sid = parties.create(create)
                return sid, parties.run(fleet, sid, {"alice": run, "bob": run})

            done = list(pool.map(session, range(args.sessions)))
        for k, (sid, outcome) in enumerate(done):
            create, run = ("proxy0", "proxy1") if k % 2 == 0 else ("proxy1", "proxy0")
            where = fleet.enclave_of(sid)
            results = ", ".join(
                f"{o.party}: {o.output if o.ok else type(o.error).__name__}"
                for o in outcome.values()
            )
            _say(f"   session {sid.hex()[:12]} on {where}: created via {create}, "
                 f"run via {run}: {results}")  # fmt: skip
            status |= not all(o.ok for o in outcome.values())

        _say("\n== 2. kill -9 one enclave while its sessions wait for bob's input")
        sids = [parties.create(fleet.proxy_targets[k % 2]) for k in range(3)]
        holds = [threading.Event() for _ in sids]
        submitted = [threading.Event() for _ in sids]
        with ThreadPoolExecutor(max_workers=len(sids)) as pool:
            runs = [
                pool.submit(
                    parties.run,
                    fleet,
                    sid,
                    {"alice": p0, "bob": p1},
                    hold_bob=holds[k],
                    alice_submitted=submitted[k],
                )
                for k, sid in enumerate(sids)
            ]
            for event in submitted:
                event.wait(RESULT_TIMEOUT)
            victim = fleet.enclave_of(sids[0])
            fleet.members[victim].process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            _say(f"   killed {victim}")
            for event in holds:
                event.set()
            outcomes = [r.result() for r in runs]
        for sid, outcome in zip(sids, outcomes, strict=True):
            where = fleet.enclave_of(sid)
            for o in outcome.values():
                text = o.output if o.ok else f"{type(o.error).__name__}: {o.error}"
                _say(f"   {sid.hex()[:12]} on {where} {o.party}: {text}")
        lost = [o for sid, out in zip(sids, outcomes, strict=True)
                if fleet.enclave_of(sid) == victim for o in out.values()]  # fmt: skip
        waited = max(o.finished_at for o in lost) - killed_at
        _say(f"   the killed enclave's parties had their UNAVAILABLE {waited:.1f} s after the kill")
        status |= not all(o.error is not None for o in lost)
        sid = parties.create(p0)
        outcome = parties.run(fleet, sid, {"alice": p1, "bob": p0})
        _say(f"   a new session afterwards ({fleet.enclave_of(sid)}): "
             f"{'ok' if all(o.ok for o in outcome.values()) else 'FAILED'}")  # fmt: skip

        _say("\n== 3. SIGTERM one enclave while a session is open on it (drain)")
        alive = [i for i in range(fleet.enclaves) if fleet.enclave(i).alive]
        target = fleet.enclave(alive[0])
        while True:
            sid = parties.create(p0)
            if fleet.enclave_of(sid) == target.name:
                break
        target.process.send_signal(signal.SIGTERM)
        fleet.wait_until(lambda: fleet.status(target.target).draining, 10)
        _say(f"   {target.name} draining; a new session goes to "
             f"{fleet.enclave_of(parties.create(p1))}")  # fmt: skip
        outcome = parties.run(fleet, sid, {"alice": p0, "bob": p1})
        _say(f"   the open session on {target.name}: "
             f"{', '.join(f'{o.party}: {o.output}' for o in outcome.values())}")  # fmt: skip
        code = target.process.wait(timeout=fleet.drain_seconds + 30)
        _say(f"   {target.name} exited with status {code} after its last session")
    except Exception as err:
        _say(f"fleet_demo: {type(err).__name__}: {err}")
        status = 1
    finally:
        fleet.stop()
        if args.keep or status:
            _say(f"\nlogs kept in {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
