"""Signed model identity: sign and verify models in the OpenSSF model signing format.

```python
from tcme.model import ModelVerifier, verify_model

identity = verify_model(
    Path("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    Path("models/SmolLM2-135M-Instruct.Q4_1.gguf.sig"),
    ModelVerifier.public_key(Path("demo/signing-key.pub.pem")),
)
identity.root_digest  # the in-toto subject digest the enclave binds into its evidence
```

The names below are the API; ``tcme.model._oms`` is private. They are loaded on
first use, so the hashing modules (``tcme.model.digest``) import without the
signing stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .identity import ModelIdentity, ModelVerifier
    from .keys import generate_signing_key, spki_fingerprint
    from .signing import sign_model
    from .verify import verify_model

_EXPORTS = {
    "ModelIdentity": "identity",
    "ModelVerifier": "identity",
    "generate_signing_key": "keys",
    "spki_fingerprint": "keys",
    "sign_model": "signing",
    "verify_model": "verify",
}

__all__ = [
    "ModelIdentity",
    "ModelVerifier",
    "generate_signing_key",
    "sign_model",
    "spki_fingerprint",
    "verify_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tcme.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
