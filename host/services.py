"""Which RPCs the proxy serves: every service of the generated ``tcme.v1`` package.

The proxy learns method names and streaming shapes from the protobuf
descriptors, never from hand-written lists, so a new RPC in ``proto/`` is
forwarded without touching ``host/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

PACKAGE = "tcme.v1"


@dataclass(frozen=True)
class MethodShape:
    """One RPC as the proxy needs it: full path and streaming on each side."""

    service: str
    name: str
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """The HTTP/2 path gRPC uses: ``/tcme.v1.Service/Method``."""
        return f"/{self.service}/{self.name}"


def tcme_services() -> list[ServiceDescriptor]:
    """Service descriptors of every generated ``tcme/v1/*_pb2.py`` module.

    Importing the modules also registers their files in the default descriptor
    pool, which server reflection reads.
    """
    package = importlib.import_module(PACKAGE)
    found: dict[str, ServiceDescriptor] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return [found[name] for name in sorted(found)]


def method_shapes(services: Sequence[ServiceDescriptor]) -> list[MethodShape]:
    """Every method of ``services`` with its streaming shape."""
    return [
        MethodShape(
            service=service.full_name,
            name=method.name,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        )
        for service in services
        for method in service.methods
    ]
