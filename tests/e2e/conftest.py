"""A real simulated-mode stack for end-to-end tests: enclave + host proxy over real sockets.

Pieces:
- ``signed_model``: the real default GGUF (models/*.gguf, or $TCME_MODEL), signed
  with a fresh test key through tcme.model, as ``make demo`` does.
- ``model_stack``: an enclave (simulated SEV-SNP provider, the verified model
  run by enclave.inference) behind a host proxy, both on 127.0.0.1:0.
- ``attest_stack``: the same enclave code signing claims for a tiny signed
  file, whose runner refuses to run: for tests that stop before the model
  (attestation and binding checks), so they do not need the 98 MB model.
- ``HostileProxy``: a man in the middle in front of the host proxy that
  records every byte it forwards and can rewrite any request or response.

The simulated provider stands in for the SEV-SNP hardware (the one permitted
fake); everything else is the production code.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from attestation.policy import simulated_policy
from attestation.snp.simulate import DEFAULT_MEASUREMENT
from tcme.v1 import tcme_pb2

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "examples" / "millionaires" / "contract.toml"
TCME_SERVICE = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"]

SKIP_NO_MODEL = (
    "default model not found: run `make model` (models/*.gguf) or set TCME_MODEL to a GGUF"
)


def find_default_model() -> Path | None:
    """$TCME_MODEL, else the single models/*.gguf of the checkout."""
    env = os.environ.get("TCME_MODEL")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = sorted((REPO / "models").glob("*.gguf"))
    return found[0] if found else None


@dataclasses.dataclass(frozen=True)
class SignedModel:
    model: Path
    signature: Path
    public_key: Path
    identity: Any


def _sign(model: Path, workdir: Path) -> SignedModel:
    from tcme.model import ModelVerifier, sign_model, verify_model
    from tcme.model.keys import generate_signing_key

    private, public = generate_signing_key(workdir / "model-key")
    signature = workdir / f"{model.name}.sig"
    sign_model(model, signature, private_key=private)
    identity = verify_model(model, signature, ModelVerifier.public_key(public))
    return SignedModel(model=model, signature=signature, public_key=public, identity=identity)


@pytest.fixture(scope="session")
def signed_model(tmp_path_factory) -> SignedModel:
    model = find_default_model()
    if model is None:
        pytest.skip(SKIP_NO_MODEL)
    return _sign(model, tmp_path_factory.mktemp("signed-model"))


@dataclasses.dataclass
class Stack:
    """A running enclave and host proxy; ``target`` is what parties dial."""

    enclave: Any
    enclave_server: grpc.Server
    enclave_target: str
    proxy: Any
    target: str
    ark_sha256: str
    identity: Any
    simdir: Path | None = None  # the simulated chain's folder (a second guest can share it)
    measurement: bytes = DEFAULT_MEASUREMENT  # the guest's launch measurement

    def policy_dict(self, **overrides: Any) -> dict[str, Any]:
        """A party policy accepting this stack (simulated root pinned, model pinned)."""
        policy: dict[str, Any] = {
            **simulated_policy(self.ark_sha256, self.measurement),
            "model": {"root_digest": self.identity.root_digest, "signer": self.identity.signer},
        }
        policy.update(overrides)
        return policy

    def stop(self) -> None:
        from enclave.server import shutdown

        self.proxy.stop(0)
        shutdown(self.enclave_server, self.enclave, grace=0)


def _start_stack(
    identity: Any, runner: Callable[..., Any], simdir: Path, measurement: bytes | None = None
) -> Stack:
    """An enclave (simulated chain in ``simdir``; its launch ``measurement``) and a proxy."""
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from host.server import create_server as create_host_server

    provider = SimulatedSnpProvider(simdir, measurement=measurement)
    # One alice key proposes every session of a test run on this shared stack.
    enclave = Enclave(
        provider=provider, model=identity, runner=runner, max_sessions_per_proposer=64
    )
    server, port = create_enclave_server("127.0.0.1:0", enclave)
    server.start()
    enclave_target = f"127.0.0.1:{port}"
    proxy, proxy_port = create_host_server("127.0.0.1:0", enclave_target, health_interval=0.2)
    proxy.start()
    return Stack(
        enclave=enclave,
        enclave_server=server,
        enclave_target=enclave_target,
        proxy=proxy,
        target=f"127.0.0.1:{proxy_port}",
        ark_sha256=provider.ark_sha256,
        identity=identity,
        simdir=simdir,
        measurement=provider.measurement,
    )


@pytest.fixture(scope="session")
def loaded_model(signed_model):
    from enclave.model_loader import load_verified_model
    from tcme.model import ModelVerifier

    loaded = load_verified_model(
        signed_model.model,
        signed_model.signature,
        ModelVerifier.public_key(signed_model.public_key),
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def model_stack(loaded_model, tmp_path_factory) -> Iterator[Stack]:
    """Enclave running the real default model, behind the real host proxy."""
    from enclave.inference import Inference

    stack = _start_stack(
        loaded_model.identity, Inference(loaded_model.llama).run, tmp_path_factory.mktemp("sim")
    )
    yield stack
    stack.stop()


def _no_model(contract: Any, values: Any) -> Any:
    raise AssertionError("this stack has no model: the test should have stopped before a run")


@pytest.fixture(scope="session")
def attest_stack(tmp_path_factory) -> Iterator[Stack]:
    """Enclave whose claims name a (really signed) tiny file; it never runs a model."""
    workdir = tmp_path_factory.mktemp("tiny-model")
    tiny = workdir / "tiny.gguf"
    tiny.write_bytes(b"GGUF not a real model: only its signed digest is used here\n")
    signed = _sign(tiny, workdir)
    stack = _start_stack(signed.identity, _no_model, tmp_path_factory.mktemp("sim"))
    yield stack
    stack.stop()


@pytest.fixture
def mitm_stack(attest_stack) -> Iterator[Stack]:
    """A machine-in-the-middle guest: the same (simulated) hardware root and the same claimed
    model as ``attest_stack``, but the attacker's own image, so another launch measurement."""
    assert attest_stack.simdir is not None
    stack = _start_stack(
        attest_stack.identity, _no_model, attest_stack.simdir, measurement=b"\x66" * 48
    )
    yield stack
    stack.stop()


# -- parties and contracts ---------------------------------------------------------------


@pytest.fixture(scope="session")
def party_keys():
    from tcme.wire import PartyKeys

    return {name: PartyKeys.generate() for name in ("alice", "bob", "carol")}


def millionaires_template() -> dict[str, Any]:
    return tomllib.loads(TEMPLATE.read_text())


def make_contract(
    party_keys: dict[str, Any], template: dict[str, Any] | None = None, **changes: Any
) -> bytes:
    """Canonical contract bytes from the millionaires template with ``changes`` applied."""
    from tests.contracts import fill_template

    body = dict(template or millionaires_template())
    body.update(changes)
    names = [p["name"] for p in body["parties"]]
    return fill_template(body, {n: party_keys[n].public_entry(n) for n in names})


@pytest.fixture
def contract_factory(party_keys):
    def _make(template: dict[str, Any] | None = None, **changes: Any) -> bytes:
        return make_contract(party_keys, template, **changes)

    return _make


@pytest.fixture
def policy_for():
    """``policy_for(stack, contract_bytes, **overrides)`` -> PartyPolicy pinned to that contract."""
    import hashlib

    from tcme.client import PartyPolicy

    def _make(stack: Stack, contract: bytes | None, **overrides: Any) -> PartyPolicy:
        data = stack.policy_dict(**overrides)
        if contract is not None:
            data.setdefault("contract", {"digest": hashlib.sha256(contract).hexdigest()})
        return PartyPolicy.from_dict(data)

    return _make


# -- the hostile proxy -------------------------------------------------------------------

Rewrite = Callable[[Any], Any]


class HostileProxy:
    """A man in the middle for the tcme.v1.Tcme service.

    ``requests[method]`` / ``responses[method]`` rewrite a decoded message on its
    way to the enclave / back to the party (return the message to forward).
    ``replies[method]`` answers a request itself, never forwarding it (a drop).
    ``seen`` holds every serialized message that crossed it, both directions.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.channel = grpc.insecure_channel(upstream)
        self.requests: dict[str, Rewrite] = {}
        self.responses: dict[str, Rewrite] = {}
        self.replies: dict[str, Rewrite] = {}
        self.seen: list[bytes] = []
        self.records: list[tuple[str, str, bytes]] = []  # (method, "request"|"response", bytes)
        handlers = {}
        for method in TCME_SERVICE.methods:
            request_cls = getattr(tcme_pb2, method.input_type.name)
            response_cls = getattr(tcme_pb2, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._forwarder(method.name, request_cls, response_cls),
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(TCME_SERVICE.full_name, handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"

    def call(self, method: str, request: Any, timeout: float = 30) -> Any:
        """Send ``request`` upstream directly (the proxy acting on its own)."""
        response_cls = getattr(tcme_pb2, TCME_SERVICE.methods_by_name[method].output_type.name)
        stub = self.channel.unary_unary(
            f"/{TCME_SERVICE.full_name}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return stub(request, timeout=timeout)

    def _forwarder(self, name: str, request_cls: Any, response_cls: Any) -> Callable:
        stub = self.channel.unary_unary(
            f"/{TCME_SERVICE.full_name}/{name}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )

        def forward(request: Any, context: grpc.ServicerContext) -> Any:
            # Record what the proxy itself saw arrive, before any rewrite of its own.
            self._record(name, "request", request.SerializeToString())
            if name in self.replies:
                return self.replies[name](request)
            if name in self.requests:
                request = self.requests[name](request)
            remaining = context.time_remaining()
            try:
                response = stub(request, timeout=min(remaining, 600) if remaining else 600)
            except grpc.RpcError as err:
                context.set_trailing_metadata(err.trailing_metadata() or ())
                context.abort(err.code(), err.details())
            self._record(name, "response", response.SerializeToString())
            if name in self.responses:
                response = self.responses[name](response)
            return response

        return forward

    def _record(self, method: str, direction: str, data: bytes) -> None:
        self.seen.append(data)
        self.records.append((method, direction, data))

    def messages(self, method: str, direction: str) -> list[bytes]:
        """Serialized messages of one method and direction, in order."""
        return [d for m, k, d in self.records if m == method and k == direction]

    def start(self) -> HostileProxy:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(0)
        self.channel.close()


@pytest.fixture
def hostile_factory():
    started: list[HostileProxy] = []

    def _make(stack: Stack) -> HostileProxy:
        proxy = HostileProxy(stack.target).start()
        started.append(proxy)
        return proxy

    yield _make
    for proxy in started:
        proxy.stop()
