"""``tcme --help`` and ``--version`` load no heavy module (they must stay fast).

Speed itself belongs in bench/; this asserts the cause of slowness is absent:
which modules the interpreter imported, read from ``sys.modules`` in a fresh
process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Each of these costs tens to hundreds of milliseconds to import.
HEAVY = ("model_signing", "sigstore", "grpc", "llama_cpp", "cryptography", "dcap_qvl", "hpke")

PROBE = """
import json, sys
from tcme.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print("HEAVY=" + json.dumps(heavy))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["model", "--help"],
        ["session", "--help"],
        ["evidence", "verify", "--help"],
        ["collateral", "fetch", "--help"],
        ["enclave", "serve", "--help"],
    ],
)
def test_help_and_version_import_nothing_heavy(argv):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY)", repr(json.dumps(HEAVY)) + ")"), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("HEAVY="))
    assert json.loads(line.removeprefix("HEAVY=")) == [], done.stdout
