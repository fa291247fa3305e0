"""Generated cases of known answer for bench/accuracy.py (and `tcme run --generate`).

``cases(rng, count)`` -> ``[(inputs per party, expected outputs)]``; only the
verdict has a known answer (the reason is free text).
"""

from __future__ import annotations

import random
from typing import Any

QUESTIONS = {
    "call eval or exec": (
        "def compute(expression):\n    return eval(expression)\n",
        "def run_script(source):\n    exec(source)\n",
    ),
    "contain a hardcoded password or secret key": (
        'PASSWORD = "hunter2"\n\ndef login(user):\n    return connect(user, PASSWORD)\n',
        'API_KEY = "sk-live-1234567890abcdef"\n\n'
        "def fetch(url):\n    return get(url, key=API_KEY)\n",
    ),
    "run a shell command": (
        "import os\n\ndef clean(path):\n    os.system('rm -rf ' + path)\n",
        "import subprocess\n\ndef listing():\n    return subprocess.run('ls -l', shell=True)\n",
    ),
}
SAFE = (
    "def add(a, b):\n    return a + b\n",
    "def mean(values):\n    return sum(values) / len(values)\n",
    "def greet(name):\n    return 'Hello, ' + name\n",
    "def is_even(n):\n    return n % 2 == 0\n",
)


def cases(rng: random.Random, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Half the snippets have the asked-about problem (fail), half are harmless (pass)."""
    out = []
    questions = sorted(QUESTIONS)
    for index in range(count):
        question = rng.choice(questions)
        bad = index % 2 == 0
        code = rng.choice(QUESTIONS[question] if bad else SAFE)
        inputs = {"author": {"code": code}, "auditor": {"question": question}}
        out.append((inputs, {"verdict": "fail" if bad else "pass"}))
    return out
