"""Enclave fixtures: party keys, the simulated provider, the real default model.

The model is the real default GGUF (``$TCME_MODEL`` or ``models/*.gguf``),
signed here with a fresh key and loaded through the verifying loader once per
test session. Without the GGUF the model tests skip and say how to fetch it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcme.wire import PartyKeys

REPO = Path(__file__).resolve().parents[2]
SKIP_NO_MODEL = "default model not found: run `make model` (or set TCME_MODEL to a .gguf)"


def default_gguf() -> Path | None:
    """The GGUF the model tests use, or None."""
    env = os.environ.get("TCME_MODEL")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = sorted((REPO / "models").glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def sim_provider(tmp_path_factory):
    """The simulated SEV-SNP provider (stands in for the hardware, and says so)."""
    from attestation.providers.simulated import SimulatedSnpProvider

    return SimulatedSnpProvider(tmp_path_factory.mktemp("sim-snp"))


@pytest.fixture(scope="session")
def signed_model(tmp_path_factory):
    """``(gguf, signature, public key PEM)``: the default model signed with a fresh key."""
    gguf = default_gguf()
    if gguf is None:
        pytest.skip(SKIP_NO_MODEL)
    from tcme.model import generate_signing_key, sign_model

    keys = tmp_path_factory.mktemp("model-key")
    private, public = generate_signing_key(keys)
    signature = keys / "model.sig"
    sign_model(gguf, signature, private_key=private)
    return gguf, signature, public


@pytest.fixture(scope="session")
def loaded_model(signed_model):
    """The real default model, loaded through the verifying loader."""
    from enclave.model_loader import load_verified_model
    from tcme.model import ModelVerifier

    gguf, signature, public = signed_model
    loaded = load_verified_model(gguf, signature, ModelVerifier.public_key(public), n_ctx=1024)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def parties():
    """Three parties' keys: alice and bob are in the contracts, carol never is."""
    return {name: PartyKeys.generate() for name in ("alice", "bob", "carol")}
