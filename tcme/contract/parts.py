"""Parts every contract kind shares: parties, inputs, decoding, and the common limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attestation.errors import TcmeError
from tcme.base.encoding import unb64
from tcme.base.keys import ED25519_PUBLIC_SIZE, HPKE_PUBLIC_SIZE, HpkePublicKey, ed25519_public
from tcme.contract import constraints
from tcme.contract.errors import ContractError
from tcme.contract.fields import PARTY_NAME, as_list, as_name, as_text, fields, int_in
from tcme.contract.model import Decoding, InputSpec, Party

MAX_PARTIES = 16
MAX_INPUTS = 64
MAX_PROMPT_CHARS = 16384
MAX_TOKENS_LIMIT = 512
DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 3600
# Stop strings (kind "general" only): a few short literals.
MAX_STOP = 4
MAX_STOP_CHARS = 32


def parse_parties(value: Any) -> tuple[Party, ...]:
    """The contract's ``parties`` list: unique names, each with its two public keys."""
    items = as_list(value, "contract.parties", 2, MAX_PARTIES)
    parties: list[Party] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"contract.parties[{index}]"
        fields(item, where, {"name", "signing_key", "hpke_key"})
        name = as_name(item["name"], f"{where}.name", PARTY_NAME)
        if name in seen:
            raise ContractError(f"{where}.name", f"duplicate party {name!r}")
        seen.add(name)
        signing = _b64(item["signing_key"], f"{where}.signing_key", ED25519_PUBLIC_SIZE)
        ed25519_public(signing, f"{where}.signing_key")
        hpke_raw = _b64(item["hpke_key"], f"{where}.hpke_key", HPKE_PUBLIC_SIZE)
        HpkePublicKey.from_bytes(hpke_raw, f"{where}.hpke_key")
        parties.append(Party(name=name, signing_key=signing, hpke_key=hpke_raw))
    signing_keys = [p.signing_key for p in parties]
    if len(set(signing_keys)) != len(signing_keys):
        raise ContractError("contract.parties", "two parties share a signing key")
    return tuple(parties)


def parse_inputs(
    value: Any, party_names: Sequence[str], profile: constraints.InputProfile
) -> tuple[InputSpec, ...]:
    """The ``inputs`` list: distinct names, each a type ``profile`` allows."""
    items = as_list(value, "contract.inputs", 1, MAX_INPUTS)
    specs: list[InputSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"contract.inputs[{index}]"
        spec = constraints.parse_input(item, where, party_names, profile)
        if spec.name in seen:
            raise ContractError(f"{where}.name", f"duplicate input {spec.name!r}")
        seen.add(spec.name)
        specs.append(spec)
    return tuple(specs)


def parse_decoding(value: Any, *, stop_allowed: bool = False) -> Decoding:
    """Deterministic decoding; ``stop`` strings only where the contract kind has them.

    ``enum-decision`` passes ``stop_allowed=False`` so its canonical form (and any
    digest already agreed) cannot grow a field.
    """
    fields(
        value,
        "contract.decoding",
        {"temperature", "seed", "max_tokens"},
        {"stop"} if stop_allowed else set(),
    )
    if value["temperature"] != 0 or isinstance(value["temperature"], bool):
        raise ContractError(
            "contract.decoding.temperature",
            "decoding must be deterministic",
            expected=0,
            actual=value["temperature"],
        )
    int_in(value["seed"], "contract.decoding.seed", 0, 2**32 - 1)
    int_in(value["max_tokens"], "contract.decoding.max_tokens", 1, MAX_TOKENS_LIMIT)
    stop = as_list(value.get("stop", []), "contract.decoding.stop", 0, MAX_STOP)
    for item in stop:
        as_text(item, "contract.decoding.stop", MAX_STOP_CHARS)
    if len(set(stop)) != len(stop):
        raise ContractError("contract.decoding.stop", "duplicate stop string")
    return Decoding(
        temperature=0, seed=value["seed"], max_tokens=value["max_tokens"], stop=tuple(stop)
    )


def parse_timeout(obj: dict[str, Any]) -> int:
    """``timeout_seconds`` (default 120, at most an hour)."""
    timeout = obj.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    return int_in(timeout, "contract.timeout_seconds", 1, MAX_TIMEOUT_SECONDS)


def _b64(value: Any, where: str, size: int) -> bytes:
    try:
        return unb64(value, where, size=size)
    except TcmeError as err:
        raise ContractError(
            err.check, err.detail, expected=err.expected, actual=err.actual
        ) from err
