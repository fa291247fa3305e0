"""Attestation evidence providers: the only code that talks to TEE devices."""
