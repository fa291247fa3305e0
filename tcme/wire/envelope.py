"""Party inputs in, outputs out: HPKE envelopes bound to one session and contract.

Input (party -> enclave)::

    payload   = canonical JSON {"type": "tcme/v1/input", "session_id": hex,
                "contract_digest": hex, "party": name, "salt": hex(32), "values": {...}}
    signature = Ed25519(party key, lp("tcme/v1/input") || lp(payload))
    plaintext = lp(payload) || lp(signature)
    info      = lp("tcme/v1/input") || lp(session_id) || lp(contract_digest) || lp(party)

Output (enclave -> each recipient)::

    plaintext = canonical JSON {"type": "tcme/v1/output", "session_id": hex,
                "contract_digest": hex, "name": output, "value": str, "salt": hex(32)}
    info      = lp("tcme/v1/output") || lp(session_id) || lp(contract_digest)
                || lp(name) || lp(recipient)

HPKE base mode does not authenticate the sender; outputs are authenticated by
their commitment in the enclave-signed receipt (tcme.wire.receipt).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import ParseError, TcmeError, UsageError
from tcme.base.encoding import (
    canonical_json,
    json_type,
    lp_join,
    parse_canonical_json,
    require_keys,
    sha256,
    split_lp,
    unhex,
)
from tcme.base.keys import (
    ED25519_SIGNATURE_SIZE,
    HpkePrivateKey,
    OpenError,
    PartyKeys,
    ed25519_public,
    ed25519_public_bytes,
    hpke_open,
    hpke_seal,
)
from tcme.contract.errors import InputError
from tcme.contract.model import Contract
from tcme.wire.claims import Claims

INPUT_TYPE = "tcme/v1/input"
OUTPUT_TYPE = "tcme/v1/output"
SALT_SIZE = 32
MAX_INPUT_PLAINTEXT = 64 * 1024


class OutputError(TcmeError):
    """An output could not be opened or does not match its binding."""


class SignedInputError(InputError):
    """An input its party really signed breaks the contract (size, framing or values).

    Its detail is about the party's secret value: the enclave tells it to
    ``party`` alone, sealed, and everyone else a fixed reason (enclave.disclosure).
    """

    def __init__(self, party: str, check: str, detail: str = "", **values: Any) -> None:
        self.party = party
        super().__init__(check, detail, **values)


@dataclass(frozen=True)
class SealedInput:
    """What a party sends (``enc``, ``ciphertext``) and keeps to check the receipt."""

    party: str
    enc: bytes
    ciphertext: bytes
    payload: bytes
    signature: bytes
    commitment: bytes
    ciphertext_sha256: bytes


@dataclass(frozen=True)
class OpenedInput:
    """An input the enclave opened and checked. Holds secrets: never log it."""

    party: str
    values: dict[str, Any]
    commitment: bytes
    ciphertext_sha256: bytes


@dataclass(frozen=True)
class OpenedOutput:
    """An output a recipient opened; check ``commitment`` against the signed receipt."""

    name: str
    recipient: str
    value: str
    salt: bytes
    commitment: bytes


def input_info(session_id: bytes, contract_digest: bytes, party: str) -> bytes:
    """HPKE info for one party's input."""
    return lp_join(INPUT_TYPE, session_id, contract_digest, party)


def input_signing_message(payload: bytes) -> bytes:
    """The bytes a party's Ed25519 key signs."""
    return lp_join(INPUT_TYPE, payload)


def input_commitment(party: str, payload: bytes, signature: bytes) -> bytes:
    """Hiding commitment to an input (the payload carries a random salt)."""
    return sha256(lp_join("tcme/v1/input-commitment", party, payload, signature))


def ciphertext_digest(enc: bytes, ciphertext: bytes) -> bytes:
    """SHA-256(enc || ciphertext): names the exact bytes a party sent."""
    return sha256(bytes(enc) + bytes(ciphertext))


def output_info(session_id: bytes, contract_digest: bytes, name: str, recipient: str) -> bytes:
    """HPKE info for one output to one recipient."""
    return lp_join(OUTPUT_TYPE, session_id, contract_digest, name, recipient)


def output_commitment(name: str, value: str, salt: bytes) -> bytes:
    """Salted commitment, so a non-recipient cannot try every enum value against it."""
    return sha256(lp_join("tcme/v1/output-commitment", name, value, salt))


# The session id's size (enclave.session.SESSION_ID_SIZE): every payload field but
# the values has a fixed size, so a party can compute its plaintext size exactly.
SESSION_ID_SIZE = 16


def input_plaintext_size(contract: Contract, party: str, values: Mapping[str, Any]) -> int:
    """The exact size of ``party``'s sealed plaintext for ``values`` (before any network call)."""
    payload = canonical_json(
        {
            "type": INPUT_TYPE,
            "session_id": "00" * SESSION_ID_SIZE,
            "contract_digest": contract.digest.hex(),
            "party": party,
            "salt": "00" * SALT_SIZE,
            "values": dict(values),
        }
    )
    return len(lp_join(payload, bytes(ED25519_SIGNATURE_SIZE)))


def check_input(contract: Contract, party: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Party side, before sealing: every check the enclave will run that needs no key.

    Types, ranges, lengths, patterns and schemas from the contract, and the
    size of the signed plaintext against the enclave's limit. Returns the
    checked values; raises ``InputError`` (never quoting a value).
    """
    checked = contract.check_values(party, values)
    size = input_plaintext_size(contract, party, checked)
    if size > MAX_INPUT_PLAINTEXT:
        raise InputError(
            "input.size",
            f"{party!r}'s signed input would be larger than the enclave accepts",
            expected=f"<= {MAX_INPUT_PLAINTEXT} bytes",
            actual=f"{size} bytes",
        )
    return checked


def seal_input(
    *,
    claims: Claims,
    contract: Contract,
    session_id: bytes,
    party: str,
    values: Mapping[str, Any],
    signing_key: ed25519.Ed25519PrivateKey | PartyKeys,
) -> SealedInput:
    """Sign and HPKE-seal ``values`` for ``party`` to the enclave key in verified ``claims``.

    Call only after the evidence binding these claims and this contract verified.
    Raises ``InputError`` when the values break the contract or the enclave's size
    limit (``check_input``, before anything is sealed), ``UsageError`` when
    ``signing_key`` is not the key the contract names for ``party``.
    """
    if isinstance(signing_key, PartyKeys):
        signing_key = signing_key.signing_key
    entry = contract.party(party)
    if ed25519_public_bytes(signing_key) != entry.signing_key:
        raise UsageError(
            "input.signing_key",
            f"this key is not the signing key the contract names for {party!r}",
        )
    checked = check_input(contract, party, values)
    payload = canonical_json(
        {
            "type": INPUT_TYPE,
            "session_id": session_id.hex(),
            "contract_digest": contract.digest.hex(),
            "party": party,
            "salt": os.urandom(SALT_SIZE).hex(),
            "values": checked,
        }
    )
    signature = signing_key.sign(input_signing_message(payload))
    enc, ciphertext = hpke_seal(
        claims.hpke_public_key,
        lp_join(payload, signature),
        input_info(session_id, contract.digest, party),
    )
    return SealedInput(
        party=party,
        enc=enc,
        ciphertext=ciphertext,
        payload=payload,
        signature=signature,
        commitment=input_commitment(party, payload, signature),
        ciphertext_sha256=ciphertext_digest(enc, ciphertext),
    )


def open_input(
    *,
    hpke_key: HpkePrivateKey,
    contract: Contract,
    session_id: bytes,
    party: str,
    enc: bytes,
    ciphertext: bytes,
) -> OpenedInput:
    """Enclave side: open, check framing and signature, then size, binding and values.

    Raises ``InputError`` whose check names the step (``input.decrypt``,
    ``input.framing``, ``input.signature``), and once the party's signature
    verified, ``SignedInputError`` (``input.size``, ``input.payload.*``,
    ``input.binding.*``, ``input.<party>.<name>``). No error quotes plaintext.
    """
    entry = contract.party(party)
    try:
        plaintext = hpke_open(
            hpke_key, enc, ciphertext, input_info(session_id, contract.digest, party)
        )
    except OpenError as err:
        raise InputError(
            "input.decrypt",
            f"input for {party!r} does not open under this session's binding "
            "(wrong enclave key, session, contract or party, or altered ciphertext)",
        ) from err
    # Before the signature verifies, the bytes are not the party's: their errors are public.
    try:
        payload, signature = split_lp(plaintext, 2, what="input")
    except ParseError as err:
        raise InputError(err.check, err.detail, expected=err.expected, actual=err.actual) from err
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise InputError(
            "input.signature",
            "wrong signature length",
            expected=ED25519_SIGNATURE_SIZE,
            actual=len(signature),
        )
    try:
        ed25519_public(entry.signing_key, "contract.signing_key").verify(
            signature, input_signing_message(payload)
        )
    except InvalidSignature as err:
        raise InputError(
            "input.signature", f"not signed by the key the contract names for {party!r}"
        ) from err
    # From here on the party signed these bytes: what is wrong with them (even their
    # size) is the party's secret, told to it alone (enclave.disclosure).
    try:
        values = _check_signed_payload(contract, session_id, party, payload, len(plaintext))
    except TcmeError as err:
        raise SignedInputError(
            party, err.check, err.detail, expected=err.expected, actual=err.actual
        ) from None
    return OpenedInput(
        party=party,
        values=values,
        commitment=input_commitment(party, payload, signature),
        ciphertext_sha256=ciphertext_digest(enc, ciphertext),
    )


def _check_signed_payload(
    contract: Contract, session_id: bytes, party: str, payload: bytes, size: int
) -> dict[str, Any]:
    if size > MAX_INPUT_PLAINTEXT:
        raise InputError("input.size", expected=f"<= {MAX_INPUT_PLAINTEXT}", actual=size)
    obj = require_keys(
        parse_canonical_json(payload, "input.payload"),
        "input.payload",
        {"type", "session_id", "contract_digest", "party", "salt", "values"},
    )
    unhex(obj["salt"], "input.payload.salt", size=SALT_SIZE)
    bound = {
        "type": INPUT_TYPE,
        "session_id": session_id.hex(),
        "contract_digest": contract.digest.hex(),
        "party": party,
    }
    for key, want in bound.items():
        if obj[key] != want:
            raise InputError(f"input.binding.{key}", expected=want, actual=str(obj[key])[:80])
    return contract.check_values(party, obj["values"])


def seal_output(
    *,
    contract: Contract,
    session_id: bytes,
    name: str,
    value: str,
    salt: bytes,
) -> list[tuple[str, bytes, bytes]]:
    """Enclave side: ``(recipient, enc, ciphertext)`` for every recipient of output ``name``."""
    spec = next(o for o in contract.outputs if o.name == name)
    plaintext = canonical_json(
        {
            "type": OUTPUT_TYPE,
            "session_id": session_id.hex(),
            "contract_digest": contract.digest.hex(),
            "name": name,
            "value": value,
            "salt": salt.hex(),
        }
    )
    sealed = []
    for recipient in spec.recipients:
        public = contract.party(recipient).hpke_public
        enc, ciphertext = hpke_seal(
            public, plaintext, output_info(session_id, contract.digest, name, recipient)
        )
        sealed.append((recipient, enc, ciphertext))
    return sealed


def open_output(
    *,
    name: str,
    recipient: str,
    enc: bytes,
    ciphertext: bytes,
    hpke_key: HpkePrivateKey | PartyKeys,
    session_id: bytes,
    contract_digest: bytes,
) -> OpenedOutput:
    """Recipient side: open one output and check its binding.

    The result is authentic only once ``verify_receipt`` finds its commitment in
    the enclave-signed receipt. Raises ``OutputError``.
    """
    if isinstance(hpke_key, PartyKeys):
        hpke_key = hpke_key.hpke_key
    try:
        plaintext = hpke_open(
            hpke_key, enc, ciphertext, output_info(session_id, contract_digest, name, recipient)
        )
    except OpenError as err:
        raise OutputError(
            "output.decrypt",
            f"output {name!r} for {recipient!r} does not open with this key and binding",
        ) from err
    try:
        obj = require_keys(
            parse_canonical_json(plaintext, "output"),
            "output",
            {"type", "session_id", "contract_digest", "name", "value", "salt"},
        )
        salt = unhex(obj["salt"], "output.salt", size=SALT_SIZE)
    except ParseError as err:
        raise OutputError(err.check, err.detail, expected=err.expected, actual=err.actual) from err
    bound = {
        "type": OUTPUT_TYPE,
        "session_id": session_id.hex(),
        "contract_digest": contract_digest.hex(),
        "name": name,
    }
    for key, want in bound.items():
        if obj[key] != want:
            raise OutputError(f"output.binding.{key}", expected=want, actual=str(obj[key])[:80])
    value = obj["value"]
    if not isinstance(value, str):
        raise OutputError("output.value", "expected a string", actual=json_type(value))
    return OpenedOutput(
        name=name,
        recipient=recipient,
        value=value,
        salt=salt,
        commitment=output_commitment(name, value, salt),
    )
