"""The evidence kinds tcme knows, as one enum: the only place a TEE name is spelled.

A kind is what a party names in its policy's ``accept`` list and what the
verifier detects from the evidence bytes (DESIGN.md "Evidence kinds, one
pipeline"):

=================  =======  =====================================================
value              device?  what it is
=================  =======  =====================================================
``sev-snp``        no       an AMD SEV-SNP attestation report (VCEK/VLEK chain)
``tdx``            no       an Intel TDX quote v4/v5 (PCK chain, dcap-qvl)
``az-snp-vtpm``    no       Azure confidential VM on SEV-SNP: HCL report + vTPM quote
``az-tdx-vtpm``    no       Azure confidential VM on TDX: HCL report + vTPM quote
``nvidia-gpu``     yes      an NVIDIA GPU's SPDM evidence, beside a CPU-TEE evidence
=================  =======  =====================================================

``Tee`` is a ``StrEnum``, so ``Tee.SEV_SNP == "sev-snp"`` and the wire format
(claims ``tee``) keeps its strings. Adding a kind: add a member here, register
its verifier in ``attestation.verifier`` and its policy table in
``attestation.policy`` (both modules say how).
"""

from __future__ import annotations

import difflib
from enum import StrEnum

from attestation.errors import UsageError


class Tee(StrEnum):
    """One evidence kind (CPU TEE or device)."""

    SEV_SNP = "sev-snp"
    TDX = "tdx"
    AZ_SNP_VTPM = "az-snp-vtpm"
    AZ_TDX_VTPM = "az-tdx-vtpm"
    NVIDIA_GPU = "nvidia-gpu"

    @property
    def is_device(self) -> bool:
        """True for device evidence (it accompanies a CPU-TEE evidence, never replaces it)."""
        return self is Tee.NVIDIA_GPU

    @property
    def vendor(self) -> str:
        """Who roots the evidence's chain, for human summaries."""
        return _VENDORS[self]

    @property
    def display_name(self) -> str:
        """Display name, e.g. ``SEV-SNP``, ``TDX``, ``Azure SEV-SNP vTPM``."""
        return _TITLES[self]

    @classmethod
    def parse(cls, value: object, check: str = "tee") -> Tee:
        """The ``Tee`` named by ``value``; ``UsageError`` naming the nearest kind otherwise."""
        if isinstance(value, Tee):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        names = [t.value for t in cls]
        hint = difflib.get_close_matches(str(value), names, n=1, cutoff=0.5)
        raise UsageError(
            check,
            "unknown evidence kind" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
            expected="one of " + ", ".join(names),
            actual=repr(value),
        )


_VENDORS = {
    Tee.SEV_SNP: "AMD",
    Tee.TDX: "Intel",
    Tee.AZ_SNP_VTPM: "AMD",
    Tee.AZ_TDX_VTPM: "Intel",
    Tee.NVIDIA_GPU: "NVIDIA",
}
_TITLES = {
    Tee.SEV_SNP: "SEV-SNP",
    Tee.TDX: "TDX",
    Tee.AZ_SNP_VTPM: "Azure SEV-SNP vTPM",
    Tee.AZ_TDX_VTPM: "Azure TDX vTPM",
    Tee.NVIDIA_GPU: "NVIDIA GPU",
}
