"""AMD SEV-SNP: report ABI, certificate chain and signature verification, simulation."""
