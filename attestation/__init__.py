"""Attestation evidence for tcme: parse, verify, validate, bind.

Layers, each answering one question (after go-sev-guest):

* ``attestation.snp.abi`` / ``attestation.tdx.abi``: what do the bytes say? (pure parsers)
* ``attestation.snp.verify`` / ``attestation.tdx.verify``: are signatures and chains good?
* ``attestation.policy``: does the verified evidence meet the party's reference values?
* ``attestation.binding``: does REPORT_DATA bind the claims, contract, session and nonce?
* ``attestation.providers``: the only code that talks to devices.
"""

from attestation.errors import (
    BindingError,
    ParseError,
    PolicyError,
    SignatureError,
    TcmeError,
    UsageError,
)

__all__ = [
    "BindingError",
    "ParseError",
    "PolicyError",
    "SignatureError",
    "TcmeError",
    "UsageError",
]
