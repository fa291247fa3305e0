"""tcme wire formats: the exact bytes parties and the enclave exchange, sign and bind.

Shared by the enclave (trusted) and the party client; pure functions over
bytes, no gRPC or device I/O. docs/protocol.md describes every format.

Party side, in order::

    claims = parse_claims(attest_response.claims)            # after verify_evidence(...)
    contract = parse_contract(attest_response.contract)      # compare .digest to what you agreed
    sealed = seal_input(claims=claims, contract=contract, session_id=sid, party="alice",
                        values={"alice_wealth": 12}, signing_key=keys)
    ... SubmitInput(enc=sealed.enc, ciphertext=sealed.ciphertext)
    ... GetResult(signature=sign_result_request(sid, "alice", keys))
    opened = [open_output(name=o.name, recipient=o.recipient, enc=o.enc,
                          ciphertext=o.ciphertext, hpke_key=keys, session_id=sid,
                          contract_digest=contract.digest) for o in response.outputs]
    verify_receipt(response.receipt, response.receipt_signature, claims=claims,
                   contract=contract, session_id=sid, own_input=sealed, party="alice",
                   outputs=opened)
"""

from tcme.base.encoding import canonical_json, lp, lp_join, parse_canonical_json, sha256
from tcme.base.keys import HPKE_SUITE_NAME, HpkePrivateKey, HpkePublicKey, PartyKeys

# The contract model is tcme.contract's (wire depends on it, never the reverse); these
# names are re-exported because every wire call above takes or returns them.
from tcme.contract.errors import ContractError, InputError
from tcme.contract.model import Contract, Decoding, InputSpec, OutputSpec, Party
from tcme.contract.parse import canonical_contract, contract_digest, parse_contract
from tcme.contract.template import render_prompt
from tcme.wire.claims import Claims, build_claims, claims_digest, parse_claims
from tcme.wire.envelope import (
    OpenedInput,
    OpenedOutput,
    OutputError,
    SealedInput,
    open_input,
    open_output,
    output_commitment,
    seal_input,
    seal_output,
)
from tcme.wire.receipt import (
    InputRecord,
    OutputRecord,
    Receipt,
    build_receipt,
    parse_receipt,
    sign_receipt,
    verify_receipt,
)
from tcme.wire.requests import (
    error_info,
    sign_abort_request,
    sign_result_request,
    verify_party_request,
)

__all__ = [
    "HPKE_SUITE_NAME",
    "Claims",
    "Contract",
    "ContractError",
    "Decoding",
    "HpkePrivateKey",
    "HpkePublicKey",
    "InputError",
    "InputRecord",
    "InputSpec",
    "OpenedInput",
    "OpenedOutput",
    "OutputError",
    "OutputRecord",
    "OutputSpec",
    "Party",
    "PartyKeys",
    "Receipt",
    "SealedInput",
    "build_claims",
    "build_receipt",
    "canonical_contract",
    "canonical_json",
    "claims_digest",
    "contract_digest",
    "error_info",
    "lp",
    "lp_join",
    "open_input",
    "open_output",
    "output_commitment",
    "parse_canonical_json",
    "parse_claims",
    "parse_contract",
    "parse_receipt",
    "render_prompt",
    "seal_input",
    "seal_output",
    "sha256",
    "sign_abort_request",
    "sign_receipt",
    "sign_result_request",
    "verify_party_request",
    "verify_receipt",
]
