"""A failed session's record: one public reason for all, each detail sealed to whom it may reach.

An error that could depend on a party's input or on an output (a value out of
range, an output that broke its JSON Schema) would, told to everyone, carry
what the contract's flows forbid. So the enclave tells every caller only a
fixed public ``reason`` with no data, and seals the detail to the parties
entitled to the value (the input's owner; the output's recipients), like an
output. Every party gets exactly one sealed detail of one fixed size, with the
error or with ``null``, so neither the count nor the size of what others get
tells a non-recipient which value failed.

Failure receipt (canonical JSON, signed by the enclave key like the receipt)::

    {"type": "tcme/v1/failure-receipt", "session_id": hex, "contract_digest": hex,
     "claims_digest": hex, "reason": str,
     "details": [{"party": p, "commitment": hex}, ...],    # every party, contract order
     "erased": ["inputs", "prompt", "output_plaintext", "model_context", "kv_cache"],
     "completed_unix_ms": int}
    signature = Ed25519(enclave key, lp("tcme/v1/failure-receipt") || lp(receipt))

Sealed detail (enclave -> one party)::

    body       = canonical JSON {"type": "tcme/v1/error-detail", "session_id": hex,
                 "contract_digest": hex, "party": p, "reason": str, "salt": hex(32),
                 "error": {"check", "detail", "expected", "actual"} | null}
    plaintext  = lp(body) || zero bytes up to DETAIL_SIZE
    info       = lp("tcme/v1/error-detail") || lp(session_id) || lp(contract_digest) || lp(p)
    commitment = SHA-256(lp("tcme/v1/error-commitment") || lp(body))

HPKE base mode does not authenticate the sender: a detail counts only once its
commitment is found in the enclave-signed failure receipt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import BindingError, ParseError, SignatureError, TcmeError
from tcme.base.encoding import (
    canonical_json,
    json_type,
    lp_join,
    parse_canonical_json,
    require_equal,
    require_keys,
    sha256,
    split_lp,
    unhex,
)
from tcme.base.keys import HpkePrivateKey, OpenError, PartyKeys, hpke_open, hpke_seal
from tcme.contract.model import Contract
from tcme.wire.claims import Claims
from tcme.wire.receipt import ERASED

FAILURE_TYPE = "tcme/v1/failure-receipt"
DETAIL_TYPE = "tcme/v1/error-detail"
DETAIL_SIZE = 1024
SALT_SIZE = 32
# Longest text of one error field inside a sealed detail (the body must fit DETAIL_SIZE).
FIELD_CHARS = (96, 360, 120, 120)


@dataclass(frozen=True)
class SealedDetail:
    """One party's sealed error detail."""

    party: str
    enc: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class FailureRecord:
    """What the enclave keeps for a failed session and hands out with its error."""

    reason: str
    receipt: bytes
    receipt_signature: bytes
    details: tuple[SealedDetail, ...]

    def detail_for(self, party: str) -> SealedDetail | None:
        """``party``'s sealed detail (None for a name the contract does not have)."""
        return next((d for d in self.details if d.party == party), None)


@dataclass(frozen=True)
class VerifiedFailure:
    """A failure receipt that verified, and this party's opened detail."""

    reason: str
    # check, detail, expected, actual: present only when this party is entitled to it.
    error: dict[str, str | None] | None
    receipt: bytes


def failure_signing_message(receipt: bytes) -> bytes:
    """The bytes the enclave key signs."""
    return lp_join(FAILURE_TYPE, receipt)


def detail_info(session_id: bytes, contract_digest: bytes, party: str) -> bytes:
    """HPKE info for one party's sealed detail."""
    return lp_join(DETAIL_TYPE, session_id, contract_digest, party)


def detail_commitment(body: bytes) -> bytes:
    """Hiding commitment (the body carries a random salt)."""
    return sha256(lp_join("tcme/v1/error-commitment", body))


def _error_fields(error: TcmeError) -> dict[str, str | None]:
    data = error.to_dict()
    keys = ("check", "detail", "expected", "actual")
    return {
        key: None if data[key] is None else str(data[key])[:limit]
        for key, limit in zip(keys, FIELD_CHARS, strict=True)
    }


def _detail_body(
    session_id: bytes, contract: Contract, party: str, reason: str, error: TcmeError | None
) -> bytes:
    fields = _error_fields(error) if error is not None else None
    while True:
        body = canonical_json(
            {
                "type": DETAIL_TYPE,
                "session_id": session_id.hex(),
                "contract_digest": contract.digest.hex(),
                "party": party,
                "reason": reason,
                "salt": os.urandom(SALT_SIZE).hex(),
                "error": fields,
            }
        )
        if len(body) + 4 <= DETAIL_SIZE or fields is None:
            return body
        # Multi-byte text can outgrow the budget: halve the longest field until it fits.
        longest = max((k for k in fields if fields[k]), key=lambda k: len(fields[k] or ""))
        fields[longest] = (fields[longest] or "")[: len(fields[longest] or "") // 2]


def build_failure(
    *,
    session_id: bytes,
    contract: Contract,
    claims_digest: bytes,
    reason: str,
    private: Mapping[str, TcmeError],
    signing_key: ed25519.Ed25519PrivateKey,
    completed_unix_ms: int,
) -> FailureRecord:
    """Enclave side: seal ``private[p]`` to each entitled party ``p``, ``null`` to the rest."""
    details: list[SealedDetail] = []
    entries: list[dict[str, str]] = []
    for party in contract.parties:
        body = _detail_body(session_id, contract, party.name, reason, private.get(party.name))
        plaintext = lp_join(body) + bytes(DETAIL_SIZE - len(body) - 4)
        enc, ciphertext = hpke_seal(
            party.hpke_public, plaintext, detail_info(session_id, contract.digest, party.name)
        )
        details.append(SealedDetail(party.name, enc, ciphertext))
        entries.append({"party": party.name, "commitment": detail_commitment(body).hex()})
    receipt = canonical_json(
        {
            "type": FAILURE_TYPE,
            "session_id": session_id.hex(),
            "contract_digest": contract.digest.hex(),
            "claims_digest": claims_digest.hex(),
            "reason": reason,
            "details": entries,
            "erased": list(ERASED),
            "completed_unix_ms": completed_unix_ms,
        }
    )
    return FailureRecord(
        reason=reason,
        receipt=receipt,
        receipt_signature=signing_key.sign(failure_signing_message(receipt)),
        details=tuple(details),
    )


def verify_failure(
    receipt: bytes,
    signature: bytes,
    *,
    claims: Claims,
    contract: Contract,
    session_id: bytes,
    party: str,
    detail: SealedDetail | None,
    keys: PartyKeys | HpkePrivateKey,
) -> VerifiedFailure:
    """Party side: (1) the enclave key in the attested claims signed the failure receipt;
    (2) it is this session's, contract's and claims'; (3) it names every party once, in
    contract order; (4) this party's sealed detail opens, is bound to this session and
    party, and its commitment is the signed one. Without ``detail`` (a proxy may drop
    it) only (1)-(3) run and ``error`` is None.

    Raises ``SignatureError`` (1), ``BindingError`` or ``ParseError``.
    """
    # (1)
    try:
        claims.signing_public_key.verify(signature, failure_signing_message(receipt))
    except InvalidSignature as err:
        raise SignatureError(
            "failure.signature", "not signed by the enclave key in the attested claims"
        ) from err
    obj = require_keys(
        parse_canonical_json(receipt, "failure"),
        "failure",
        {
            "type",
            "session_id",
            "contract_digest",
            "claims_digest",
            "reason",
            "details",
            "erased",
            "completed_unix_ms",
        },
    )
    # (2)
    require_equal("failure.type", FAILURE_TYPE, obj["type"])
    require_equal("failure.session_id", session_id, unhex(obj["session_id"], "failure.session_id"))
    require_equal(
        "failure.contract_digest",
        contract.digest,
        unhex(obj["contract_digest"], "failure.contract_digest", size=32),
    )
    require_equal(
        "failure.claims_digest",
        claims.digest,
        unhex(obj["claims_digest"], "failure.claims_digest", size=32),
    )
    reason = obj["reason"]
    if not isinstance(reason, str):
        raise ParseError("failure.reason", "expected a string", actual=json_type(reason))
    # (3)
    entries = obj["details"]
    if not isinstance(entries, list):
        raise ParseError("failure.details", "expected a list", actual=json_type(entries))
    committed = {}
    for entry in entries:
        item = require_keys(entry, "failure.details", {"party", "commitment"})
        committed[item["party"]] = unhex(item["commitment"], "failure.details.commitment", size=32)
    require_equal(
        "failure.details.parties",
        [p.name for p in contract.parties],
        [e.get("party") if isinstance(e, dict) else None for e in entries],
    )
    require_equal("failure.erased", list(ERASED), obj["erased"])
    if detail is None:
        return VerifiedFailure(reason=reason, error=None, receipt=bytes(receipt))
    # (4)
    if detail.party != party:
        raise BindingError("failure.detail.party", expected=party, actual=detail.party[:64])
    hpke_key = keys.hpke_key if isinstance(keys, PartyKeys) else keys
    try:
        plaintext = hpke_open(
            hpke_key,
            detail.enc,
            detail.ciphertext,
            detail_info(session_id, contract.digest, party),
        )
    except OpenError as err:
        raise BindingError(
            "failure.detail.decrypt", f"the sealed error detail does not open for {party!r}"
        ) from err
    if len(plaintext) != DETAIL_SIZE:
        raise ParseError("failure.detail.size", expected=DETAIL_SIZE, actual=len(plaintext))
    size = int.from_bytes(plaintext[:4], "big")
    if size > DETAIL_SIZE - 4 or any(plaintext[4 + size :]):
        raise ParseError("failure.detail.padding", "the padding is not zero bytes")
    (body,) = split_lp(plaintext[: 4 + size], 1, what="failure.detail")
    require_equal("failure.detail.commitment", committed[party], detail_commitment(body))
    fields = require_keys(
        parse_canonical_json(body, "failure.detail"),
        "failure.detail",
        {"type", "session_id", "contract_digest", "party", "reason", "salt", "error"},
    )
    for key, want in (
        ("type", DETAIL_TYPE),
        ("session_id", session_id.hex()),
        ("contract_digest", contract.digest.hex()),
        ("party", party),
        ("reason", reason),
    ):
        require_equal(f"failure.detail.{key}", want, fields[key])
    error = fields["error"]
    if error is not None:
        error = require_keys(
            error, "failure.detail.error", {"check", "detail", "expected", "actual"}
        )
    return VerifiedFailure(reason=reason, error=error, receipt=bytes(receipt))
