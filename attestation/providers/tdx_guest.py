"""The Intel TDX guest device, ``/dev/tdx_guest``: checked and reported, never an evidence source.

``/dev/tdx_guest`` offers one ioctl, TDX_CMD_GET_REPORT0
(``include/uapi/linux/tdx-guest.h``): a 1024-byte TDREPORT, MACed with a key
only this CPU knows. A remote party cannot verify a TDREPORT; it needs a quote,
which the Quoting Enclave signs. Since Linux 6.7 the kernel gets quotes through
configfs-tsm (the old TDX_CMD_GET_QUOTE ioctl was removed before it shipped in
a release), so on TDX the evidence provider is configfs-tsm
(``attestation.providers.configfs_tsm``); ``attestation.providers.select`` only
reports whether this device exists, to explain why a TDX guest without
configfs-tsm has no provider.
"""

from __future__ import annotations

from pathlib import Path

TDX_GUEST_DEVICE = Path("dev/tdx_guest")
