"""Intel TDX evidence: parse (``abi``), verify with dcap-qvl (``verify``), validate (``policy``).

Collateral (TCB Info, QE Identity, CRLs) is read offline from a file or cache
(``collateral``); only ``pcs`` fetches, for ``tcme collateral fetch`` (tested against
a local stand-in for Intel PCS in ``tests/attestation/tdx/fake_pcs.py``). Parties normally call
``attestation.verifier.verify_evidence``, which dispatches TDX quotes here::

    quote = parse_quote(raw)
    verified = verify_quote(quote, VerifyOptions(collateral=collateral_for_quote(cache, quote)))
    validate_quote(verified, policy.tdx)  # then the verifier checks the binding
"""

from attestation.tdx.abi import Quote, parse_quote
from attestation.tdx.collateral import TdxCollateral, collateral_for_quote, load_collateral
from attestation.tdx.policy import TdxPolicy, validate_quote
from attestation.tdx.verify import VerifiedQuote, VerifyOptions, verify_quote

__all__ = [
    "Quote",
    "TdxCollateral",
    "TdxPolicy",
    "VerifiedQuote",
    "VerifyOptions",
    "collateral_for_quote",
    "load_collateral",
    "parse_quote",
    "validate_quote",
    "verify_quote",
]
