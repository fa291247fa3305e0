"""Generate Python protobuf/gRPC code from proto/tcme/v1/*.proto.

The one writer of tcme/v1/*_pb2*.py: the files are build outputs (git-ignored),
regenerated on every `make`, never edited by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def main() -> int:
    """Run protoc on every .proto under proto/tcme/v1 and return its status."""
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("tcme/v1/*.proto"))
    if not sources:
        print("gen_proto: no .proto files yet; nothing to generate")
        return 0
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *sources,
    ]
    status = protoc.main(args)
    if status != 0:
        print(f"gen_proto: protoc failed with status {status}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
