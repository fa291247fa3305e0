"""The one interface every evidence source implements.

Providers are the only code in tcme that talks to attestation hardware
(configfs-tsm, /dev/sev-guest, /dev/tdx_guest) or stands in for it (simulated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

REPORT_DATA_SIZE = 64


@dataclass(frozen=True)
class Evidence:
    """Raw evidence as produced by a provider, not yet verified by anyone.

    ``tee``: the ``attestation.tee.Tee`` kind ("sev-snp" or "tdx").
    ``raw``: the SNP report (1184 bytes) or TDX quote.
    ``certs``: PEM bytes the verifier needs beside the report (SNP: VEK, then ASK/ASVK,
    then ARK), or empty when the verifier must fetch them (cache/KDS/PCS).
    ``simulated``: True only for the simulated provider; verifiers refuse it unless
    their policy explicitly allows simulated evidence.
    """

    tee: str
    raw: bytes
    certs: bytes = b""
    simulated: bool = False
    provider: str = ""


@runtime_checkable
class EvidenceProvider(Protocol):
    """Produces evidence whose REPORT_DATA is exactly the 64 bytes given.

    The attributes are read-only here (properties), so a provider may narrow them: a
    class attribute ``tee = Tee.SEV_SNP`` satisfies ``tee: str``.
    """

    @property
    def name(self) -> str:
        """The interface's name as ``diagnose`` reports it (``sev-guest``, ...)."""
        ...

    @property
    def tee(self) -> str:
        """The TEE whose evidence it produces (an ``attestation.tee.Tee`` value)."""
        ...

    @property
    def simulated(self) -> bool:
        """True only for the simulated provider."""
        ...

    def get_evidence(self, report_data: bytes) -> Evidence:
        """Ask the (real or simulated) hardware for fresh evidence over ``report_data``."""
        ...
