"""`make demo`'s script runs end to end: two party processes, summaries, answers, clean shutdown."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]


def test_demo_script(signed_model, tmp_path):
    env = dict(os.environ, TCME_MODEL=str(signed_model.model), TMPDIR=str(tmp_path))
    import sys

    env["PY"] = sys.executable
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    answers = re.findall(r"^\[(alice|bob)\] answer: richer = (\w+)$", out, flags=re.M)
    assert sorted(a[0] for a in answers) == ["alice", "bob"]
    assert answers[0][1] == answers[1][1] in {"first", "second", "equal"}
    for party in ("alice", "bob"):
        assert f"[{party}]   simulated          YES" in out
        assert f"[{party}] receipt verified" in out
    # Each party printed only its own wealth.
    wealth = dict(re.findall(r"^\[(alice|bob)\] my wealth \(known only to me\): (\d+)$", out, re.M))
    alice_block = out.split("-- alice --")[1].split("-- bob --")[0]
    bob_block = out.split("-- bob --")[1]
    assert wealth["bob"] not in alice_block and wealth["alice"] not in bob_block.split("== Note")[0]
    assert "may be wrong" in out
    # Servers are gone and the work folder removed.
    assert not list(tmp_path.glob("tcme-demo.*"))
