"""``tcme run examples/NAME``: one whole contract session on this machine, simulated.

Everything the real deployment has, in one process over real local sockets:
the default model (or ``--model``) signed with a throwaway publisher key and
loaded through the verifying loader; an enclave on the SIMULATED SEV-SNP
provider (stands in for the hardware, and says so); the untrusted host proxy
in front of it; fresh keys for every party, filled into the example's
contract; then every party, concurrently, through the party library
(``tcme.client.Party``): attest under its own policy (simulated root pinned,
model digest and signer pinned, contract digest pinned, optional
``--min-score``), seal and submit its input, collect its outputs and verify
the signed receipt. Prints each party's verified outputs.

Inputs come from the example's ``inputs.toml``, else a generated case
(``cases.py``, or ``--generate SEED``), else values drawn from the input
constraints. The inputs are example test data, not secrets: they are printed
beside each party's verified outputs, with the expected answer when a
generated case knows it. Long phases show their progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attestation.errors import UsageError
from attestation.text import format_sha256
from tcme.cli.exitcodes import EXIT_OK

log = logging.getLogger(__name__)

RESULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class PartyRun:
    """What one party got: its verified outputs and the receipt it checked."""

    party: str
    outputs: dict[str, str]
    receipt: Any


@dataclass(frozen=True)
class LocalRun:
    """A finished local session.

    ``inputs`` are the values each party submitted: example test data, shown so
    the answer can be checked; ``expected`` is the known answer of a generated
    case, else None.
    """

    contract: Any
    session_id: bytes
    inputs_source: str
    capability: Any
    parties: dict[str, PartyRun]
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected: dict[str, str] | None = None


Phase = Callable[[str], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def _quiet_phase(_name: str) -> Iterator[None]:
    yield


class PhaseProgress:
    """Each phase of ``tcme run`` on stderr; one still running after a second shows its time.

    On a terminal the line counts up every second; otherwise a line every
    ``NOTE_EVERY`` seconds says it is still running.
    """

    NOTE_EVERY = 10

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Show ``name`` while the block runs, then how long it took."""
        start = time.monotonic()
        done = threading.Event()
        self._write(f"  {name} ...", end="" if self._tty else "\n")

        def tick() -> None:
            while not done.wait(1.0):
                elapsed = int(time.monotonic() - start)
                if self._tty:
                    self._write(f"\r  {name} ... {elapsed} s", end="")
                elif elapsed % self.NOTE_EVERY == 0:
                    self._write(f"  {name}: still running ({elapsed} s)")

        ticker = threading.Thread(target=tick, name="tcme-run-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            took = time.monotonic() - start
            prefix = f"\r  {name} ... " if self._tty else f"  {name}: "
            self._write(f"{prefix}done in {took:.1f} s")

    def _write(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self._stream, flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme run``."""
    parser = subparsers.add_parser(
        "run",
        help="run an example contract end to end on a SIMULATED local enclave",
        description=(
            "Run one session of the contract in DIRECTORY (examples/NAME): signed model, "
            "simulated enclave, host proxy and every party on this machine, over real sockets."
        ),
    )
    parser.add_argument("directory", type=Path, metavar="DIRECTORY", help="example directory")
    parser.add_argument(
        "--model", type=Path, help="GGUF file (default: $TCME_MODEL or models/*.gguf)"
    )
    parser.add_argument("--inputs", type=Path, help="inputs TOML (default: DIRECTORY/inputs.toml)")
    parser.add_argument(
        "--generate", type=int, metavar="SEED", help="use a generated case instead of inputs.toml"
    )
    parser.add_argument(
        "--min-score",
        type=float,
        metavar="X",
        help="every party's policy: min_capability_score (0..1) on the contract's tests",
    )
    parser.add_argument("--n-ctx", type=int, default=2048, help="model context size (tokens)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=_run)


def default_model() -> Path:
    """``$TCME_MODEL``, else the first ``models/*.gguf`` here or in the checkout."""
    env = os.environ.get("TCME_MODEL")
    if env:
        return Path(env)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        found = sorted((root / "models").glob("*.gguf"))
        if found:
            return found[0]
    raise UsageError(
        "run.model", "no model: run `make model`, set TCME_MODEL, or pass --model FILE.gguf"
    )


def load_signed_model(model: Path, work: Path, *, n_ctx: int = 2048) -> Any:
    """Sign ``model`` with a throwaway publisher key and load it through the verifying loader."""
    from enclave.model_loader import load_verified_model
    from tcme.model import ModelVerifier, generate_signing_key, sign_model

    if not model.exists():
        raise UsageError("run.model", "no such model file", actual=str(model))
    private, public = generate_signing_key(work / "publisher")
    signature = work / "model.sig"
    sign_model(model, signature, private_key=private)
    return load_verified_model(
        model, signature, ModelVerifier.public_key(public), n_ctx=n_ctx, verbose=False
    )


def run_local(
    directory: Path,
    *,
    loaded: Any = None,
    model: Path | None = None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    inputs_file: Path | None = None,
    generate: int | None = None,
    min_score: float | None = None,
    n_ctx: int = 2048,
    phase: Phase = _quiet_phase,
) -> LocalRun:
    """Run one session of the example in ``directory``; return what every party verified.

    ``loaded`` reuses an already loaded model (``enclave.model_loader.LoadedModel``,
    as tests do); otherwise ``model`` (or the default) is signed and loaded here.
    Raises the first party's ``TcmeError`` when any party rejects. ``phase``
    wraps each long step (``PhaseProgress`` shows them on a terminal).
    """
    from attestation.policy import simulated_policy
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.inference import Inference
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from enclave.server import shutdown
    from host.server import create_server as create_host_server
    from tcme.client import Party, PartyPolicy, TcmeClient
    from tcme.client.values import check_values
    from tcme.contract import find_contract_file, load_contract
    from tcme.contract.example import ExampleCase, example_case, read_inputs
    from tcme.wire import PartyKeys

    template = load_contract(find_contract_file(directory))
    keys = {p.name: PartyKeys.generate() for p in template.contract.parties}
    loaded_contract = load_contract(template.path, keys=keys)
    contract = loaded_contract.contract
    assert loaded_contract.raw is not None
    if inputs is not None:
        case = ExampleCase({k: dict(v) for k, v in inputs.items()}, "given by the caller")
    elif inputs_file is not None:
        case = ExampleCase(read_inputs(inputs_file, contract), f"from {inputs_file}")
    else:
        case = example_case(template.path.parent, contract, seed=generate)
    values = case.values
    for party in contract.parties:  # bad test data is bad input (exit 2), before any work
        check_values(contract, party.name, values.get(party.name, {}))
    with tempfile.TemporaryDirectory(prefix="tcme-run-") as tmp:
        work = Path(tmp)
        own_model = loaded is None
        if own_model:
            with phase("signing the model with a throwaway key, verifying and loading it"):
                loaded = load_signed_model(model or default_model(), work, n_ctx=n_ctx)
        provider = SimulatedSnpProvider(work / "sim")
        enclave = Enclave(
            provider=provider, model=loaded.identity, runner=Inference(loaded.llama).run
        )
        server, port = create_enclave_server("127.0.0.1:0", enclave)
        server.start()
        proxy, proxy_port = create_host_server(
            "127.0.0.1:0", f"127.0.0.1:{port}", health_interval=0.5
        )
        proxy.start()
        try:
            contract_table: dict[str, Any] = {"digest": contract.digest.hex()}
            if min_score is not None:
                contract_table["min_capability_score"] = min_score
            policy = PartyPolicy.from_dict(
                {
                    **simulated_policy(provider.ark_sha256, provider.measurement),
                    "model": {
                        "root_digest": loaded.identity.root_digest,
                        "signer": loaded.identity.signer,
                    },
                    "contract": contract_table,
                }
            )
            with TcmeClient(f"127.0.0.1:{proxy_port}", timeout=RESULT_TIMEOUT) as client:
                creating = "creating the session" + (
                    " (the enclave runs the contract's capability tests)"
                    if contract.capability_tests
                    else ""
                )
                proposer = next(iter(keys))
                with phase(creating):
                    session = client.create_session(
                        loaded_contract.raw, proposer=proposer, keys=keys[proposer]
                    )
                parties = [Party(name, keys[name], policy, client) for name in keys]
                running = phase(
                    "every party: attest, seal and submit its input, wait for the model, "
                    "verify the receipt"
                )
                with running, ThreadPoolExecutor(max_workers=len(parties)) as pool:
                    futures = {
                        party.name: pool.submit(
                            party.run, session.session_id, values.get(party.name, {})
                        )
                        for party in parties
                    }
                    wait(futures.values(), return_when=FIRST_EXCEPTION)
                    failed = [
                        (name, error)
                        for name, f in futures.items()
                        if f.done() and (error := f.exception()) is not None
                    ]
                    if failed:
                        # A party that refused ends the session for everyone (signed
                        # abort), so the others stop waiting for its input.
                        name, error = failed[0]
                        with contextlib.suppress(Exception):
                            client.abort(session.session_id, name, keys[name])
                        wait(futures.values())
                        raise error
                    results = {name: future.result() for name, future in futures.items()}
        finally:
            proxy.stop(0)
            shutdown(server, enclave, grace=0)
            if own_model:
                loaded.close()
    capability = next(iter(results.values()))[0].capability
    return LocalRun(
        contract=contract,
        session_id=session.session_id,
        inputs_source=case.source,
        capability=capability,
        parties={
            name: PartyRun(party=name, outputs=dict(result.outputs), receipt=result.receipt)
            for name, (_attestation, result) in results.items()
        },
        inputs=values,
        expected=case.expected,
    )


def _run(args: argparse.Namespace) -> int:
    if args.min_score is not None and not 0 <= args.min_score <= 1:
        raise UsageError("run.min_score", "a number from 0 to 1", actual=args.min_score)
    if not args.json:
        print(
            f"tcme run {args.directory}: SIMULATED enclave (no hardware TEE), host proxy and "
            "parties on this machine",
            file=sys.stderr,
            flush=True,
        )
    run = run_local(
        args.directory,
        model=args.model,
        inputs_file=args.inputs,
        generate=args.generate,
        min_score=args.min_score,
        n_ctx=args.n_ctx,
        phase=_quiet_phase if args.json else PhaseProgress(),
    )
    if args.json:
        print(json.dumps(_report(run), indent=2, sort_keys=True), flush=True)
        return EXIT_OK
    _print_run(run)
    return EXIT_OK


def _print_run(run: LocalRun) -> None:
    contract = run.contract
    rows: list[tuple[str, str]] = [
        (
            "contract",
            f"{contract.kind}  {format_sha256(contract.digest)}"
            + (f"  ({contract.title})" if contract.title else ""),
        ),
        ("session", run.session_id.hex()),
        ("inputs", f"{run.inputs_source}; example test data, shown to check the answer"),
    ]
    for party, values in run.inputs.items():
        for name, value in values.items():
            rows.append(("", f"{party}.{name} = {_short(value)}"))
    if run.expected is not None:
        rows.append(("expected", ", ".join(f"{k} = {v}" for k, v in run.expected.items())))
    if run.capability is not None:
        rows.append(
            (
                "capability",
                f"{run.capability.passed}/{run.capability.total} agreed tests passed "
                "(measured by the enclave, bound into the evidence and the receipt)",
            )
        )
    for name, outcome in run.parties.items():
        rows.append((name, _outputs_text(outcome.outputs, run.expected)))
    rows.append(
        (
            "verified",
            "every party: evidence (simulated root), model digest and signer, contract "
            "digest, receipt signature and commitments; receipt states: "
            + _receipt_states(next(iter(run.parties.values())).receipt),
        )
    )
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    sys.stdout.flush()


def _receipt_states(receipt: Any) -> str:
    """What the verified receipt says was erased (as `tcme session run` prints it), then
    what a general contract's receipt adds about the model's state."""
    erased = "erased: " + ", ".join(receipt.erased)
    return "; ".join([erased, *receipt.stateless])


def _outputs_text(outputs: Mapping[str, str], expected: Mapping[str, str] | None) -> str:
    if not outputs:
        return "(no outputs: by contract)"
    shown = []
    for name, value in outputs.items():
        text = f"{name} = {_short(value)}"
        if expected is not None and name in expected:
            text += (
                "  (as expected)" if value == expected[name] else (f"  (expected {expected[name]})")
            )
        shown.append(text)
    return ", ".join(shown)


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _report(run: LocalRun) -> dict[str, Any]:
    return {
        "simulated": True,
        "contract_digest": run.contract.digest.hex(),
        "kind": run.contract.kind,
        "session_id": run.session_id.hex(),
        "inputs_source": run.inputs_source,
        "inputs": run.inputs,
        "expected": run.expected,
        "capability": (
            {"passed": run.capability.passed, "total": run.capability.total}
            if run.capability is not None
            else None
        ),
        "parties": {name: party.outputs for name, party in run.parties.items()},
        "receipt_erased": list(next(iter(run.parties.values())).receipt.erased),
        "receipt_stateless": list(next(iter(run.parties.values())).receipt.stateless),
    }
