"""Errors a provider raises when the hardware (or the kernel in front of it) says no.

A provider error is neither a parse nor a policy failure: the evidence was
never produced. ``ProviderUnavailable`` means this machine has no working
interface of that kind at all (no device, no configfs-tsm, no permission), so a
caller may try the next provider; ``ProviderError`` means the interface is there
but a request failed (firmware error, a raced generation counter, a short read).
"""

from __future__ import annotations

from attestation.errors import TcmeError


class ProviderError(TcmeError):
    """The interface exists but did not produce usable evidence for this request."""


class ProviderUnavailable(ProviderError):
    """This kind of provider cannot work on this machine (absent device, no permission)."""
