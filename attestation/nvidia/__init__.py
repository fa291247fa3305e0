"""NVIDIA GPU and NVSwitch confidential-computing evidence (evidence kind ``nvidia-gpu``).

``abi`` (what the bytes say), ``chain`` and ``ocsp`` (are the certificates good),
``verify`` (one device, or a whole system with its topology), ``rim`` (reference
values, signature first). See docs/gpu.md.
"""
