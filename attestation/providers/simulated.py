"""The simulated SEV-SNP evidence provider (CI, laptops): no hardware, says so everywhere."""

from __future__ import annotations

import logging
from pathlib import Path

from attestation.providers._blobs import check_report_data
from attestation.providers.base import Evidence
from attestation.snp.simulate import DEFAULT_MEASUREMENT, SimulatedSnp
from attestation.tee import Tee

log = logging.getLogger(__name__)


class SimulatedSnpProvider:
    """Produces SIMULATED SEV-SNP evidence signed by a local chain under ``directory``.

    Verifiers refuse this evidence unless their policy sets ``allow_simulated = true``.
    """

    name = "simulated-sev-snp"
    tee = Tee.SEV_SNP
    simulated = True

    def __init__(
        self,
        directory: Path,
        *,
        measurement: bytes | None = None,
        policy: int | None = None,
    ) -> None:
        log.warning(
            "SIMULATED evidence: %s signs SEV-SNP reports with a local, non-AMD chain in %s",
            self.name,
            directory,
        )
        self._snp = SimulatedSnp(Path(directory))
        self._measurement = measurement
        self._policy = policy

    @property
    def ark_sha256(self) -> str:
        """Fingerprint of the simulated root, for ``simulated_ark_sha256`` pins."""
        return self._snp.ark_sha256

    @property
    def measurement(self) -> bytes:
        """The MEASUREMENT every report carries, for ``[snp] allowed_measurements`` pins."""
        return self._measurement if self._measurement is not None else DEFAULT_MEASUREMENT

    def get_evidence(self, report_data: bytes) -> Evidence:
        """A fresh simulated report over exactly 64 bytes of ``report_data``."""
        report_data = check_report_data(report_data)
        raw = self._snp.report(
            bytes(report_data), measurement=self._measurement, policy=self._policy
        )
        return Evidence(
            tee=self.tee,
            raw=raw,
            certs=self._snp.certs_pem(),
            simulated=True,
            provider=self.name,
        )
