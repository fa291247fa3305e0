"""A minimal TPM 2.0 command client: the four commands an Azure vTPM provider needs.

Speaks raw TPM 2.0 command/response bytes (TCG "TPM 2.0 Library, Part 3:
Commands") over a ``TpmTransport``:

* ``DeviceTransport``: a kernel TPM character device, ``/dev/tpmrm0`` (the
  in-kernel resource manager) on an Azure CVM: one ``write`` per command, one
  ``read`` per response;
* ``SocketTransport``: the same bytes over a Unix stream socket, which is what
  ``swtpm socket --server type=unixio`` serves (tests; a software TPM).

Commands: ``TPM2_NV_ReadPublic``, ``TPM2_NV_Read``, ``TPM2_PCR_Read`` and
``TPM2_Quote``. Authorisation is the empty password session (``TPM_RS_PW``),
which is how the Azure paravisor provisions the HCL report's NV index and the
AK. No TSS library is needed; every response is parsed with bounds checks and a
TPM error code becomes ``TpmError`` carrying it.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from attestation.azure.tpm import TPM_ALG_SHA256, encode_pcr_selection
from attestation.binary import ByteReader
from attestation.providers.errors import ProviderError

TPM_ST_NO_SESSIONS = 0x8001
TPM_ST_SESSIONS = 0x8002
TPM_RS_PW = 0x40000009
TPM_RH_OWNER = 0x40000001
TPM_ALG_NULL = 0x0010

TPM_CC_NV_READ = 0x0000014E
TPM_CC_QUOTE = 0x00000158
TPM_CC_NV_READ_PUBLIC = 0x00000169
TPM_CC_PCR_READ = 0x0000017E

TPMA_NV_OWNERREAD = 1 << 17
TPMA_NV_AUTHREAD = 1 << 18

NV_READ_CHUNK = 512  # below every TPM's TPM_PT_NV_BUFFER_MAX (swtpm and Azure: 1024)
MAX_RESPONSE = 8192
HEADER = struct.Struct(">HII")
_NV_PUBLIC_HEAD = struct.Struct(">IHI")  # nvIndex, nameAlg, attributes
_PCR_SELECTION_HEAD = struct.Struct(">HB")  # hash, sizeofSelect
# Warnings that mean "send the same command again" (Part 2, 6.6.3 TPM_RC):
# TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_RETRY.
_TRY_AGAIN = {0x908, 0x90A, 0x922}
RETRIES = 5
RETRY_DELAY_S = 0.05
# An empty password session: handle, nonce (empty), attributes (0), hmac (empty).
_PASSWORD_SESSION = struct.pack(">IHBH", TPM_RS_PW, 0, 0, 0)


class TpmError(ProviderError):
    """The TPM answered with an error code (``rc``, also in ``actual``), or not like a TPM."""

    rc: int | None = None

    @classmethod
    def from_rc(cls, code: int, rc: int) -> TpmError:
        """The error for command ``code`` answered with response code ``rc``."""
        err = cls("tpm.rc", f"TPM command 0x{code:08x} failed", expected="0", actual=f"0x{rc:x}")
        err.rc = rc
        return err

    @property
    def is_size_error(self) -> bool:
        """TPM_RC_SIZE (format-one 0x015, any parameter): a value too large for its field."""
        return self.rc is not None and bool(self.rc & 0x080) and self.rc & 0x03F == 0x015


class TpmTransport(Protocol):
    """Sends one command's bytes and returns the whole response."""

    def transact(self, command: bytes) -> bytes:
        """The TPM's response to ``command``."""
        ...


class DeviceTransport:
    """A kernel TPM device (``/dev/tpmrm0``): write the command, read the response."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def transact(self, command: bytes) -> bytes:
        """One command, one response, on a fresh file descriptor."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as err:
            raise TpmError(
                "tpm.open", f"cannot open {self.path}: {os.strerror(err.errno or 0)}"
            ) from err
        try:
            os.write(fd, command)
            return os.read(fd, MAX_RESPONSE)
        except OSError as err:
            raise TpmError("tpm.io", f"{self.path}: {os.strerror(err.errno or 0)}") from err
        finally:
            os.close(fd)


class SocketTransport:
    """Raw TPM commands over a Unix stream socket (``swtpm socket --server type=unixio``)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def transact(self, command: bytes) -> bytes:
        """Send ``command`` and read exactly the response its header announces."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(command)
                head = _recv_exact(sock, HEADER.size)
                _tag, size, _code = HEADER.unpack(head)
                if not HEADER.size <= size <= MAX_RESPONSE:
                    raise TpmError("tpm.response.size", "bad response size", actual=size)
                return head + _recv_exact(sock, size - HEADER.size)
        except OSError as err:
            raise TpmError("tpm.io", f"{self.path}: {err}") from err


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise TpmError("tpm.response.truncated", "the TPM closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class NvPublic:
    """The parts of ``TPMS_NV_PUBLIC`` a reader needs."""

    index: int
    attributes: int
    size: int


@dataclass(frozen=True)
class QuoteResult:
    """A quote: the signed ``TPMS_ATTEST`` bytes and the ``TPMT_SIGNATURE`` bytes."""

    message: bytes
    signature: bytes


class Tpm:
    """The four commands, over ``transport``."""

    def __init__(self, transport: TpmTransport) -> None:
        self.transport = transport

    def nv_read_public(self, index: int) -> NvPublic:
        """``TPM2_NV_ReadPublic``: attributes and size of NV index ``index``."""
        r = self._call(TPM_CC_NV_READ_PUBLIC, struct.pack(">I", index), b"", sessions=False)
        public = _reader(r.tpm2b("nv_public"), "nv_public")
        nv_index, _name_alg, attributes = public.unpack(_NV_PUBLIC_HEAD, "head")
        public.tpm2b("auth_policy")
        size = public.u16be("data_size")
        return NvPublic(index=nv_index, attributes=attributes, size=size)

    def nv_read(self, index: int) -> bytes:
        """The whole contents of NV index ``index`` (``TPM2_NV_Read``, in chunks)."""
        public = self.nv_read_public(index)
        if public.attributes & TPMA_NV_AUTHREAD:
            auth = index
        elif public.attributes & TPMA_NV_OWNERREAD:
            auth = TPM_RH_OWNER
        else:
            raise TpmError(
                "tpm.nv.attributes",
                f"NV index 0x{index:08x} is readable neither with its own nor the owner's auth",
                actual=f"0x{public.attributes:08x}",
            )
        out = bytearray()
        while len(out) < public.size:
            chunk = min(NV_READ_CHUNK, public.size - len(out))
            handles = struct.pack(">II", auth, index)
            r = self._call(TPM_CC_NV_READ, handles, struct.pack(">HH", chunk, len(out)))
            data = r.tpm2b("nv_data")
            if len(data) != chunk:
                raise TpmError(
                    "tpm.nv_read.size", "short NV read", expected=chunk, actual=len(data)
                )
            out += data
        return bytes(out)

    def pcr_read(self, pcrs: Sequence[int], hash_alg: int = TPM_ALG_SHA256) -> list[bytes]:
        """The values of ``pcrs`` in ``hash_alg``'s bank, in the order given (``TPM2_PCR_Read``).

        A TPM returns at most eight digests per call, so this asks again for the rest.
        """
        values: dict[int, bytes] = {}
        wanted = sorted(set(pcrs))
        while len(values) < len(wanted):
            remaining = tuple(p for p in wanted if p not in values)
            selection = encode_pcr_selection(hash_alg, remaining)
            r = self._call(TPM_CC_PCR_READ, b"", selection, sessions=False)
            r.u32be("pcr_update_counter")
            count = r.u32be("pcr_selection.count")
            returned: list[int] = []
            for i in range(count):
                _alg, size = r.unpack(_PCR_SELECTION_HEAD, f"pcr_selection[{i}]")
                bitmap = r.take(size, f"pcr_selection[{i}].bitmap")
                returned += [n for n in range(8 * size) if bitmap[n // 8] >> (n % 8) & 1]
            digests = r.u32be("pcr_values.count")
            if digests != len(returned) or not digests:
                raise TpmError("tpm.pcr_read", "PCR_Read returned no or mismatched values")
            for index in returned:
                values[index] = r.tpm2b(f"pcr_values[{index}]")
        return [values[p] for p in pcrs]

    def quote(
        self,
        ak_handle: int,
        qualifying_data: bytes,
        pcrs: Sequence[int],
        hash_alg: int = TPM_ALG_SHA256,
    ) -> QuoteResult:
        """``TPM2_Quote`` with the AK's own scheme (TPM_ALG_NULL) over ``pcrs``."""
        params = (
            struct.pack(">H", len(qualifying_data))
            + qualifying_data
            + struct.pack(">H", TPM_ALG_NULL)
            + encode_pcr_selection(hash_alg, tuple(pcrs))
        )
        r = self._call(TPM_CC_QUOTE, struct.pack(">I", ak_handle), params)
        message = r.tpm2b("quoted")
        return QuoteResult(message=message, signature=r.rest())

    def _call(
        self, code: int, handles: bytes, params: bytes, *, sessions: bool = True
    ) -> ByteReader:
        """One command: handles, then (with sessions) the authorisation area, then parameters."""
        auth = struct.pack(">I", len(_PASSWORD_SESSION)) + _PASSWORD_SESSION if sessions else b""
        handles_and_params = handles + auth + params
        tag = TPM_ST_SESSIONS if sessions else TPM_ST_NO_SESSIONS
        command = HEADER.pack(tag, HEADER.size + len(handles_and_params), code) + (
            handles_and_params
        )
        for _attempt in range(RETRIES):
            response = self.transport.transact(command)
            if len(response) < HEADER.size or HEADER.unpack_from(response)[2] not in _TRY_AGAIN:
                break
            time.sleep(RETRY_DELAY_S)
        if len(response) < HEADER.size:
            raise TpmError("tpm.response", "response shorter than its header", actual=len(response))
        rtag, size, rc = HEADER.unpack_from(response)
        if size != len(response):
            raise TpmError(
                "tpm.response.size", "size field mismatch", expected=size, actual=len(response)
            )
        if rc != 0:
            raise TpmError.from_rc(code, rc)
        r = _reader(response[HEADER.size :], "response")
        if rtag == TPM_ST_SESSIONS:
            param_size = r.u32be("parameter_size")
            r = _reader(r.take(param_size, "parameters"), "response")
        return r


def _reader(data: bytes, what: str) -> ByteReader:
    # A short or malformed answer is the TPM's fault, not the evidence's: TpmError.
    return ByteReader(data, f"tpm.{what}", error=TpmError)
