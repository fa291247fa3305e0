"""The bottom layer every tcme package shares: byte encodings and key types.

``encoding``: canonical JSON (the one encoding every signature and digest is
over), length-prefixed framing, strict base64/hex, bounded JSON parsing.
``keys``: the HPKE suite, Ed25519, and the keys parties and the enclave hold.

Nothing here imports another tcme package (docs/architecture.md, "Imports").
"""
