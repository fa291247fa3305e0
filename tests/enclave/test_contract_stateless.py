"""Statelessness seen from outside: no file written, no input or output in any log.

The enclave runs as its own process (``tcme enclave serve --simulated``) with a
fresh empty working directory, HOME and TMPDIR, and DEBUG logging on. The
party processes here send a canary string as a private input and ask for an
output that may echo it, through the real host proxy (a second process).

Why each check could fail:

- Read-only filesystems. We run as root, and root ignores permission bits, so
  ``chmod 0555`` proves nothing. Instead the enclave starts inside its own
  mount namespace (``unshare -m``; private propagation, so this machine's
  mounts are untouched) in which every filesystem holding its working
  directory, HOME, TMPDIR, /tmp, /dev/shm, the checkout, the model and ``/``
  is remounted read-only, and a probe write to each must fail with EROFS
  before the enclave starts. Only the simulated provider's key directory is
  bound back writable: it stands in for the hardware's key store, and the
  simulated provider takes a lock file there at start (the snapshot below
  shows the session itself changes nothing in it). Any file write by the enclave then fails, and
  the session (which must complete) would fail with it. Where ``unshare`` is
  not permitted the test says so and still runs the two checks below.
- Snapshots. Every file under the enclave's working directory, HOME, TMPDIR
  and simulated-key directory (path, size, mtime, inode) is the same after the
  session as before.
- Kernel write accounting. ``/proc/PID/io`` ``write_bytes`` (bytes this process
  sent to the storage layer) does not grow during the session.
- Canary. Neither the canary input, nor the other party's input, nor the
  decrypted outputs (when long enough to be distinctive) appear anywhere in
  the enclave's or the host proxy's stdout/stderr, DEBUG logs included.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attestation.policy import simulated_policy
from attestation.snp.simulate import DEFAULT_MEASUREMENT
from tcme.client import Party, PartyPolicy, TcmeClient
from tcme.wire import canonical_contract, parse_contract

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]

# Runs inside the new mount namespace, then becomes the enclave (same process).
LAUNCHER = r"""
import errno, logging, os, subprocess, sys
keep, writable, argv = sys.argv[1].split(os.pathsep), sys.argv[2], sys.argv[3:]
mounts = []
with open("/proc/self/mountinfo") as info:
    for line in info:
        mounts.append(line.split()[4])
def mount_of(path):
    path = os.path.realpath(path)
    return max((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len)
for point in sorted({mount_of(p) for p in keep}, key=len):
    subprocess.run(["mount", "-o", "remount,bind,ro", point], check=True)
# The simulated provider's key directory stays writable (it stands in for the
# hardware's key store and takes a lock file at start); the test's snapshot
# shows the session changes nothing in it.
subprocess.run(["mount", "--bind", writable, writable], check=True)
subprocess.run(["mount", "-o", "remount,bind,rw", writable], check=True)
for path in keep:
    probe = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), ".tcme-probe")
    try:
        open(probe, "w").close()
    except OSError as err:
        if err.errno != errno.EROFS:
            raise
    else:
        print("LAUNCHER: still writable:", path, flush=True)
        sys.exit(3)
print("LAUNCHER: read-only:", len(keep), "paths", flush=True)
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
from tcme.cli import main
sys.exit(main(argv))
"""


def _unshare_works() -> str | None:
    """None when a private mount namespace with remounts is possible, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-o", "remount,bind,ro", "/"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    if probe.returncode != 0:
        return f"unshare -m not permitted here: {probe.stderr.strip()[:120]}"
    return None


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            out[str(path)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def _write_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class _Output:
    """Collects a process's combined output and hands over lines as they come."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self.queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self.thread.start()

    def _pump(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)
            self.queue.put(line)

    def wait_for(self, marker: str, timeout: float = 120) -> str:
        for _ in range(int(timeout * 10)):
            try:
                line = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    self.thread.join(timeout=5)
                    raise AssertionError(
                        f"process exited ({self.process.returncode}) before {marker!r}:\n"
                        + self.text[-3000:]
                    ) from None
                continue
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} within {timeout}s:\n" + self.text[-3000:])

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _stop(process: subprocess.Popen, output: _Output) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output.thread.join(timeout=10)


def _contract(parties, canary_pattern: str) -> bytes:
    return canonical_contract(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [parties[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [
                {
                    "party": "alice",
                    "name": "code",
                    "type": "string",
                    "max_len": 64,
                    "pattern": canary_pattern,
                },
                {"party": "bob", "name": "note", "type": "string", "max_len": 64},
            ],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 40},
            "outputs": [
                {
                    "name": "echo",
                    "type": "grammar",
                    "grammar": "root ::= [A-Za-z0-9-]{1,40}",
                    "max_chars": 40,
                    "prompt": "Repeat this code exactly and nothing else: {code}",
                    "recipients": ["alice"],
                },
                {
                    "name": "same",
                    "type": "enum",
                    "values": ["yes", "no"],
                    "prompt": "Is '{code}' the same text as '{note}'? Answer yes or no.",
                    "recipients": ["alice", "bob"],
                    "declassify": {"code": ["bob"], "note": ["alice"]},
                },
            ],
        }
    )


def test_enclave_writes_no_file_and_logs_no_value(tmp_path, signed_model, sim_provider, parties):
    from attestation.providers.simulated import SimulatedSnpProvider

    gguf, signature, public = signed_model
    cwd, home, tmpdir, sim = (tmp_path / d for d in ("cwd", "home", "tmp", "sim"))
    for directory in (cwd, home, tmpdir):
        directory.mkdir()
    ark = SimulatedSnpProvider(sim).ark_sha256  # keys exist before the enclave starts
    canary = "CANARY-" + secrets.token_hex(8)
    other = "bobsnote" + secrets.token_hex(6)

    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "GRPC_VERBOSITY": "INFO",
    }
    serve = [
        "enclave",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--model",
        str(gguf),
        "--signature",
        str(signature),
        "--public-key",
        str(public),
        "--simulated",
        "--sim-dir",
        str(sim),
        "--n-ctx",
        "1024",
    ]
    why_not = _unshare_works()
    if why_not is None:
        keep = [
            cwd,
            home,
            tmpdir,
            Path("/tmp"),
            Path("/dev/shm"),
            REPO,
            gguf,
            signature,
            Path("/"),
        ]
        command = [
            "unshare", "-m", "--propagation", "private",
            sys.executable, "-c", LAUNCHER, os.pathsep.join(map(str, keep)), str(sim), *serve,
        ]  # fmt: skip
    else:
        print(f"read-only filesystem check skipped: {why_not}")
        command = [
            sys.executable, "-c",
            "import logging, sys; logging.basicConfig(level=logging.DEBUG, "
            "format='%(levelname)s %(name)s: %(message)s'); "
            "from tcme.cli import main; sys.exit(main(sys.argv[1:]))",
            *serve,
        ]  # fmt: skip

    before = _snapshot(cwd, home, tmpdir, sim)
    enclave = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    enclave_out = _Output(enclave)
    host = None
    host_out = None
    try:
        if why_not is None:
            enclave_out.wait_for("LAUNCHER: read-only")
        address = enclave_out.wait_for("tcme enclave listening on").rsplit(" ", 1)[1].strip()
        port_file = tmp_path / "host.port"
        host = subprocess.Popen(
            [sys.executable, "-m", "tcme", "host", "serve", "--listen", "127.0.0.1:0",
             "--enclave", address, "--port-file", str(port_file)],
            env={**env, "HOME": str(tmp_path)}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        host_out = _Output(host)
        for _ in range(600):
            if port_file.exists() and port_file.read_text().strip():
                break
            threading.Event().wait(0.05)
        target = f"127.0.0.1:{port_file.read_text().strip()}"
        written_before = _write_bytes(enclave.pid)

        raw = _contract(parties, "[A-Za-z0-9-]*")
        contract = parse_contract(raw)
        policy = PartyPolicy.from_dict(
            {
                **simulated_policy(ark, DEFAULT_MEASUREMENT),
                "model": {
                    "root_digest": _root_digest(gguf, signature, public),
                    "signer": {"skip": True},
                },
                "contract": {"digest": contract.digest.hex()},
            }
        )
        values = {"alice": {"code": canary}, "bob": {"note": other}}
        with TcmeClient(target, timeout=120) as client:
            sid = client.create_session(raw).session_id
            with ThreadPoolExecutor(2) as pool:
                futures = {
                    n: pool.submit(Party(n, parties[n], policy, client).run, sid, values[n])
                    for n in values
                }
                results = {n: f.result(timeout=180)[1] for n, f in futures.items()}
        written_after = _write_bytes(enclave.pid)
    finally:
        _stop(enclave, enclave_out)
        if host is not None and host_out is not None:
            _stop(host, host_out)

    assert results["alice"].receipt.stateless == (
        "model_context_reset",
        "kv_cache_cleared",
        "no_file_written",
        "no_value_logged",
    )
    assert set(results["alice"].outputs) == {"echo", "same"}
    logs = {"enclave": enclave_out.text, "host": host_out.text if host_out else ""}
    # The searches below mean something only if the logs are there.
    assert "INFO enclave.session: session" in logs["enclave"]
    assert "forward" in logs["host"] or "host proxy" in logs["host"]
    secrets_to_find = [canary, canary.lower(), other]
    secrets_to_find += [v for v in results["alice"].outputs.values() if len(v) >= 6]
    for name, text in logs.items():
        for secret in secrets_to_find:
            assert secret not in text, f"{name} output contains a session value"
    assert _snapshot(cwd, home, tmpdir, sim) == before
    assert list(cwd.iterdir()) == [] and list(tmpdir.iterdir()) == [] and list(home.iterdir()) == []
    if written_before is not None and written_after is not None:
        assert written_after == written_before, "the enclave sent bytes to storage"


def _root_digest(gguf: Path, signature: Path, public: Path) -> str:
    from tcme.model import ModelVerifier, verify_model

    return verify_model(gguf, signature, ModelVerifier.public_key(public)).root_digest
