"""The session receipt: what the enclave computed over, signed by its attested key.

Canonical JSON::

    {"type": "tcme/v1/receipt", "session_id": hex, "contract_digest": hex,
     "claims_digest": hex,
     "inputs": [{"party": p, "commitment": hex, "ciphertext_sha256": hex}, ...],
     "outputs": [{"name": o, "recipients": [..], "commitment": hex}],
     "erased": ["inputs", "prompt", "output_plaintext", "model_context", "kv_cache"],
     "completed_unix_ms": int}

    signature = Ed25519(enclave signing key, lp("tcme/v1/receipt") || lp(receipt))

``inputs`` follow the contract's party order; ``outputs`` the contract's output
order. The enclave signs only after it erased the session's plaintext state.

Contracts of kind ``general`` add two fields (``enum-decision`` receipts are
unchanged)::

    "stateless": ["model_context_reset", "kv_cache_cleared", "no_file_written",
                  "no_value_logged"],
    "capability": {"digest": hex, "passed": k, "total": n}   # only with capability tests

``stateless`` is what the enclave did and checked after the run
(enclave.inference.verify_erased) and what tests/enclave/test_contract_stateless.py
proves from outside; ``capability`` repeats the attested capability record's
digest and score (tcme.contract.capability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import BindingError, ParseError, SignatureError
from tcme.base.encoding import (
    canonical_json,
    json_type,
    lp_join,
    parse_canonical_json,
    require_equal,
    require_keys,
    unhex,
)
from tcme.contract.model import Contract
from tcme.wire.claims import Claims
from tcme.wire.envelope import OpenedOutput, SealedInput

RECEIPT_TYPE = "tcme/v1/receipt"
ERASED = ("inputs", "prompt", "output_plaintext", "model_context", "kv_cache")
STATELESS = ("model_context_reset", "kv_cache_cleared", "no_file_written", "no_value_logged")


@dataclass(frozen=True)
class InputRecord:
    """Receipt entry for one party's input."""

    party: str
    commitment: bytes
    ciphertext_sha256: bytes


@dataclass(frozen=True)
class OutputRecord:
    """Receipt entry for one output."""

    name: str
    recipients: tuple[str, ...]
    commitment: bytes


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt (``raw`` = the signed bytes)."""

    raw: bytes
    session_id: bytes
    contract_digest: bytes
    claims_digest: bytes
    inputs: tuple[InputRecord, ...]
    outputs: tuple[OutputRecord, ...]
    erased: tuple[str, ...]
    completed_unix_ms: int
    stateless: tuple[str, ...] = ()
    capability: dict[str, Any] | None = None


def receipt_signing_message(receipt: bytes) -> bytes:
    """The bytes the enclave key signs."""
    return lp_join(RECEIPT_TYPE, receipt)


def build_receipt(
    *,
    session_id: bytes,
    contract_digest: bytes,
    claims_digest: bytes,
    inputs: Sequence[InputRecord],
    outputs: Sequence[OutputRecord],
    completed_unix_ms: int,
    stateless: bool = False,
    capability: Mapping[str, Any] | None = None,
) -> bytes:
    """Enclave side: canonical receipt bytes (``stateless``/``capability``: kind general)."""
    extra: dict[str, Any] = {}
    if stateless:
        extra["stateless"] = list(STATELESS)
    if capability is not None:
        extra["capability"] = dict(capability)
    return canonical_json(
        {
            **extra,
            "type": RECEIPT_TYPE,
            "session_id": session_id.hex(),
            "contract_digest": contract_digest.hex(),
            "claims_digest": claims_digest.hex(),
            "inputs": [
                {
                    "party": r.party,
                    "commitment": r.commitment.hex(),
                    "ciphertext_sha256": r.ciphertext_sha256.hex(),
                }
                for r in inputs
            ],
            "outputs": [
                {"name": r.name, "recipients": list(r.recipients), "commitment": r.commitment.hex()}
                for r in outputs
            ],
            "erased": list(ERASED),
            "completed_unix_ms": completed_unix_ms,
        }
    )


def sign_receipt(receipt: bytes, signing_key: ed25519.Ed25519PrivateKey) -> bytes:
    """Enclave side: Ed25519 signature over ``receipt_signing_message(receipt)``."""
    return signing_key.sign(receipt_signing_message(receipt))


def parse_receipt(receipt: bytes) -> Receipt:
    """Parse canonical receipt bytes (no signature check); raises ``ParseError``."""
    obj = require_keys(
        parse_canonical_json(receipt, "receipt"),
        "receipt",
        {
            "type",
            "session_id",
            "contract_digest",
            "claims_digest",
            "inputs",
            "outputs",
            "erased",
            "completed_unix_ms",
        },
        {"stateless", "capability"},
    )
    if obj["type"] != RECEIPT_TYPE:
        raise ParseError("receipt.type", expected=RECEIPT_TYPE, actual=obj["type"])
    inputs = tuple(
        InputRecord(
            party=_str(item["party"], "receipt.inputs.party"),
            commitment=unhex(item["commitment"], "receipt.inputs.commitment", size=32),
            ciphertext_sha256=unhex(
                item["ciphertext_sha256"], "receipt.inputs.ciphertext_sha256", size=32
            ),
        )
        for item in _items(
            obj["inputs"], "receipt.inputs", {"party", "commitment", "ciphertext_sha256"}
        )
    )
    outputs = tuple(
        OutputRecord(
            name=_str(item["name"], "receipt.outputs.name"),
            recipients=tuple(
                _str(r, "receipt.outputs.recipients")
                for r in _list(item["recipients"], "receipt.outputs.recipients")
            ),
            commitment=unhex(item["commitment"], "receipt.outputs.commitment", size=32),
        )
        for item in _items(obj["outputs"], "receipt.outputs", {"name", "recipients", "commitment"})
    )
    completed = obj["completed_unix_ms"]
    if not isinstance(completed, int) or isinstance(completed, bool):
        raise ParseError("receipt.completed_unix_ms", "expected an integer")
    return Receipt(
        raw=bytes(receipt),
        session_id=unhex(obj["session_id"], "receipt.session_id"),
        contract_digest=unhex(obj["contract_digest"], "receipt.contract_digest", size=32),
        claims_digest=unhex(obj["claims_digest"], "receipt.claims_digest", size=32),
        inputs=inputs,
        outputs=outputs,
        erased=tuple(_str(e, "receipt.erased") for e in _list(obj["erased"], "receipt.erased")),
        completed_unix_ms=completed,
        stateless=tuple(
            _str(e, "receipt.stateless")
            for e in _list(obj.get("stateless", []), "receipt.stateless")
        ),
        capability=_capability(obj.get("capability")),
    )


def _capability(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    entry = require_keys(value, "receipt.capability", {"digest", "passed", "total"})
    unhex(entry["digest"], "receipt.capability.digest", size=32)
    for key in ("passed", "total"):
        if not isinstance(entry[key], int) or isinstance(entry[key], bool):
            raise ParseError(f"receipt.capability.{key}", "expected an integer")
    return dict(entry)


def verify_receipt(
    receipt: bytes,
    signature: bytes,
    *,
    claims: Claims,
    contract: Contract,
    session_id: bytes,
    own_input: SealedInput | None = None,
    party: str | None = None,
    outputs: Sequence[OpenedOutput] = (),
    capability: Any = None,
) -> Receipt:
    """Party side: verify the receipt and everything it commits to.

    Steps: (1) Ed25519 signature by the signing key in the attested ``claims``;
    (2) session id, contract digest and claims digest equal this session's;
    (3) exactly one input entry per contract party, in contract order;
    (4) ``own_input``'s commitment and ciphertext digest are the ones used;
    (5) outputs match the contract's names and recipients; every opened output's
        commitment is the signed one and its value is in the contract's enum;
        when ``party`` is given, every output it should receive was opened;
    (6) the erasure statement lists everything the protocol erases; for kind
        ``general`` also the statelessness statement;
    (7) a capability entry exactly when the contract has capability tests, equal
        to ``capability`` (the attested ``CapabilityRecord``) when given.
    Raises ``SignatureError`` (1) or ``BindingError``/``ParseError``.
    """
    # (1)
    try:
        claims.signing_public_key.verify(signature, receipt_signing_message(receipt))
    except InvalidSignature as err:
        raise SignatureError(
            "receipt.signature", "not signed by the enclave key in the attested claims"
        ) from err
    parsed = parse_receipt(receipt)
    # (2)
    require_equal("receipt.session_id", session_id, parsed.session_id)
    require_equal("receipt.contract_digest", contract.digest, parsed.contract_digest)
    # The identity digest: per-attestation GPU evidence in the claims does not change it.
    require_equal("receipt.claims_digest", claims.identity_digest, parsed.claims_digest)
    # (3)
    require_equal(
        "receipt.inputs.parties",
        [p.name for p in contract.parties],
        [r.party for r in parsed.inputs],
    )
    # (4)
    if own_input is not None:
        record = next(r for r in parsed.inputs if r.party == own_input.party)
        require_equal("receipt.inputs.commitment", own_input.commitment, record.commitment)
        require_equal(
            "receipt.inputs.ciphertext_sha256",
            own_input.ciphertext_sha256,
            record.ciphertext_sha256,
        )
    # (5)
    require_equal(
        "receipt.outputs",
        [(o.name, o.recipients) for o in contract.outputs],
        [(o.name, o.recipients) for o in parsed.outputs],
    )
    signed = {o.name: o for o in parsed.outputs}
    for opened in outputs:
        signed_output = signed.get(opened.name)
        if signed_output is None:
            raise BindingError("receipt.outputs.name", expected=sorted(signed), actual=opened.name)
        require_equal(
            f"receipt.outputs.{opened.name}.commitment",
            signed_output.commitment,
            opened.commitment,
        )
        spec = next(o for o in contract.outputs if o.name == opened.name)
        if not spec.accepts(opened.value):
            raise BindingError(
                f"output.{opened.name}.value",
                "not a value the contract allows for this output",
                expected=list(spec.values) if spec.type == "enum" else spec.type,
                actual=opened.value[:80],
            )
    if party is not None:
        require_equal(
            "receipt.outputs.received",
            sorted(o.name for o in contract.outputs_for(party)),
            sorted(o.name for o in outputs),
        )
    # (6)
    require_equal("receipt.erased", list(ERASED), list(parsed.erased))
    stateless = list(STATELESS) if contract.has_turns else []
    require_equal("receipt.stateless", stateless, list(parsed.stateless))
    # (7)
    if bool(contract.capability_tests) != (parsed.capability is not None):
        raise BindingError(
            "receipt.capability",
            "a capability entry comes exactly with a contract that has capability tests",
            expected="present" if contract.capability_tests else "absent",
            actual="present" if parsed.capability is not None else "absent",
        )
    if capability is not None:
        require_equal("receipt.capability", capability.summary(), parsed.capability)
    return parsed


def _str(value: Any, check: str) -> str:
    if not isinstance(value, str):
        raise ParseError(check, "expected a string", actual=json_type(value))
    return value


def _list(value: Any, check: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(check, "expected a list", actual=json_type(value))
    return value


def _items(value: Any, check: str, keys: set[str]) -> list[dict[str, Any]]:
    return [require_keys(item, check, keys) for item in _list(value, check)]
