"""A stranger on the proxy's port, run as its own process by tests/e2e/test_dos_load.py.

``python dos_attacker.py PATTERN TARGET COUNT`` runs one denial-of-service
pattern against TARGET until it is killed (or for ``MAX_SECONDS``), and prints
``ready`` once the attack is in place. A separate process, as a real attacker
is: its threads do not share the server's interpreter lock.

Patterns: ``header_only_streams`` (calls that send headers and never a
message, no deadline), ``get_result_flood`` (validly signed GetResult long
polls on the attacker's own session, no deadline, each re-sent the moment it
ends), ``create_session_flood`` (CreateSession with the longest timeout, COUNT
in all), ``catastrophic_regex`` (CreateSession whose contract has ``(a|aa)+``
and a capability test value of 90 ``a`` and a ``b``, re-sent continuously).
"""

from __future__ import annotations

import sys
import threading
import time
import tomllib
from pathlib import Path

import grpc

from tcme.base.encoding import canonical_json  # the attacker skips the library's checks
from tcme.client import create_session_request
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import PartyKeys, canonical_contract, sign_result_request

MAX_SECONDS = 300
EVIL = "(a|aa)+"
ATTACK = "a" * 90 + "b"
TEMPLATE = Path(__file__).resolve().parents[2] / "examples/millionaires/contract.toml"


def _channels(target: str, count: int) -> list[grpc.Channel]:
    return [
        grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]


def _keys() -> dict[str, PartyKeys]:
    return {name: PartyKeys.generate() for name in ("alice", "bob")}


def _millionaires(keys: dict[str, PartyKeys], **changes: object) -> bytes:
    body = tomllib.loads(TEMPLATE.read_text())
    body["parties"] = [keys[n].public_entry(n) for n in ("alice", "bob")]
    body.update(changes)
    return canonical_contract(body)


def _keep_sending(channels: list[grpc.Channel], count: int, send) -> None:
    """``count`` calls in flight, each re-sent as soon as it ends."""
    stubs = [tcme_pb2_grpc.TcmeStub(c) for c in channels]

    def launch(index: int) -> None:
        future = send(stubs[index % len(stubs)])
        future.add_done_callback(lambda _f: launch(index))

    for index in range(count):
        launch(index)


def header_only_streams(target: str, count: int) -> None:
    channels = _channels(target, 3)
    never = threading.Event()

    def silent():
        never.wait(MAX_SECONDS)
        return
        yield

    calls = [
        channels[i % 3].stream_unary("/tcme.v1.Tcme/GetResult").future(silent())
        for i in range(count)
    ]
    del calls


def get_result_flood(target: str, count: int) -> None:
    keys = _keys()
    channels = _channels(target, 2)
    stub = tcme_pb2_grpc.TcmeStub(channels[0])
    contract = _millionaires(keys)
    sid = stub.CreateSession(create_session_request(contract, "alice", keys["alice"]), timeout=30)
    sid = sid.session_id
    request = tcme_pb2.GetResultRequest(
        session_id=sid, party="alice", signature=sign_result_request(sid, "alice", keys["alice"])
    )
    _keep_sending(channels, count, lambda s: s.GetResult.future(request))


def create_session_flood(target: str, count: int) -> None:
    # A party of its own contract, proposing fresh signed sessions with the longest
    # timeout: its per-proposer slots fill, nobody else's.
    keys = _keys()
    contract = _millionaires(keys, timeout_seconds=3600)
    channels = _channels(target, 2)
    stubs = [tcme_pb2_grpc.TcmeStub(c) for c in channels]
    for index in range(count):
        request = create_session_request(contract, "alice", keys["alice"])
        stubs[index % 2].CreateSession.future(request, timeout=30)


def catastrophic_regex(target: str, count: int) -> None:
    keys = _keys()
    contract = canonical_json(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [keys[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [
                {"party": "alice", "name": "word", "type": "string", "max_len": 100,
                 "pattern": EVIL, "may_flow_to": ["bob"]},
            ],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 4},
            "outputs": [
                {"name": "same", "type": "enum", "values": ["yes", "no"],
                 "prompt": "Is {word} a word?", "recipients": ["alice", "bob"]},
            ],
            "capability_tests": [{"inputs": {"word": ATTACK}, "expected": {"same": "no"}}],
            "timeout_seconds": 60,
        }
    )  # fmt: skip
    request = tcme_pb2.CreateSessionRequest(contract=contract)
    _keep_sending(
        _channels(target, 2), count, lambda s: s.CreateSession.future(request, timeout=30)
    )


PATTERNS = {
    f.__name__: f
    for f in (header_only_streams, get_result_flood, create_session_flood, catastrophic_regex)
}


def main() -> None:
    pattern, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    PATTERNS[pattern](target, count)
    print("ready", flush=True)
    time.sleep(MAX_SECONDS)


if __name__ == "__main__":
    main()
