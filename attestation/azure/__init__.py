"""Azure confidential VMs: evidence through the paravisor's (HCL's) vTPM.

On Azure SEV-SNP and TDX confidential VMs the guest has no ``/dev/sev-guest``:
the paravisor writes an *HCL report* (hardware report + runtime data) into vTPM
NV index ``0x01400001``, and the vTPM's attestation key (AK), named in that
runtime data, signs ordinary TPM2 quotes over the verifier's qualifying data.

Modules, one job each:

* ``hcl``: the HCL report layout (pure, bounds-checked);
* ``runtime_data``: the runtime-data JSON and the AK JWK ``HCLAkPub``;
* ``tpm``: TPM 2.0 structures (TPMS_ATTEST, TPMT_SIGNATURE), pure;
* ``quote``: AK signature, PCR digest and qualifying-data checks;
* ``evidence``: the JSON form the CoCo attestation agent and Trustee use;
* ``policy``: the ``[azure]`` policy table;
* ``verify``: the whole pipeline for ``az-snp-vtpm`` / ``az-tdx-vtpm``.
"""
