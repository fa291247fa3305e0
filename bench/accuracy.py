"""Accuracy of a model on every example contract, on generated cases of known answer.

    .venv/bin/python bench/accuracy.py                       # the default model
    .venv/bin/python bench/accuracy.py --model other.gguf    # add any GGUF (repeatable)
    .venv/bin/python bench/accuracy.py --cases 60 --markdown

For each example with generated cases (``examples/NAME/cases.py``; Yao's
millionaires has its generator here, beside the other helper's contract), the
contract's own model turns run through ``enclave.inference.Inference`` exactly
as the enclave runs them (same prompts, grammars, greedy decoding, seeds,
final checks), without the session crypto around them, which does not change
an answer. A case counts as correct when every output with a known answer is
right; a run the enclave would refuse (``output.incomplete``, an off-contract
value) counts as wrong. The baseline is the majority answer of the same cases
(always answering it), and ``lift`` is accuracy / baseline. Results for the
default model are in docs/benchmarks.md ("Accuracy").
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from attestation.errors import TcmeError  # noqa: E402
from enclave.inference import Inference  # noqa: E402
from tcme.contract import load_contract  # noqa: E402
from tcme.contract.example import load_cases, merge_values  # noqa: E402
from tcme.wire import PartyKeys  # noqa: E402


def millionaires_cases(
    rng: random.Random, count: int
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Wealth pairs for examples/millionaires: first richer, second richer, or equal."""
    out = []
    for index in range(count):
        kind = ("first", "second", "equal")[index % 3]
        low = rng.randint(0, 999_999)
        high = rng.randint(low + 1, 1_000_000)
        first, second = {"first": (high, low), "second": (low, high), "equal": (low, low)}[kind]
        out.append(
            ({"alice": {"alice_wealth": first}, "bob": {"bob_wealth": second}}, {"richer": kind})
        )
    return out


BUILTIN_CASES = {"millionaires": millionaires_cases}


def examples() -> list[tuple[str, Path, Any]]:
    """(name, directory, cases function) for every example with generated cases."""
    found = []
    for directory in sorted(p.parent for p in (REPO / "examples").glob("*/contract*.*")):
        cases = load_cases(directory) or BUILTIN_CASES.get(directory.name)
        if cases is not None:
            found.append((directory.name, directory, cases))
    return found


def evaluate(llama: Any, directory: Path, cases: Any, count: int, seed: int) -> dict[str, Any]:
    """Run ``count`` generated cases; return accuracy, majority baseline and time per case."""
    template = load_contract(directory)
    keys = {p.name: PartyKeys.generate() for p in template.contract.parties}
    contract = load_contract(directory, keys=keys).contract
    inference = Inference(llama)
    generated = cases(random.Random(seed), count)
    correct = 0
    refused = 0
    started = time.perf_counter()
    for inputs, expected in generated:
        try:
            outputs = inference.run(contract, merge_values(inputs))
        except TcmeError:
            refused += 1
            continue
        correct += all(outputs.get(name) == value for name, value in expected.items())
    elapsed = time.perf_counter() - started
    answers = Counter(tuple(sorted(expected.items())) for _inputs, expected in generated)
    baseline = answers.most_common(1)[0][1] / len(generated)
    accuracy = correct / len(generated)
    return {
        "cases": len(generated),
        "correct": correct,
        "refused": refused,
        "accuracy": accuracy,
        "baseline": baseline,
        "lift": accuracy / baseline if baseline else 0.0,
        "seconds_per_case": elapsed / len(generated),
    }


def default_model() -> Path:
    found = sorted((REPO / "models").glob("*.gguf"))
    if not found:
        sys.exit("bench/accuracy.py: no models/*.gguf: run `make model` or pass --model")
    return found[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", default=[], help="GGUF (repeatable)")
    parser.add_argument("--no-default", action="store_true", help="only the --model GGUFs")
    parser.add_argument("--cases", type=int, default=40, help="generated cases per example")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", action="append", default=[], help="example name (repeatable)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    from llama_cpp import Llama

    models = ([] if args.no_default else [default_model()]) + args.model
    rows = []
    for model in models:
        llama = Llama(str(model), n_ctx=args.n_ctx, verbose=False)
        try:
            for name, directory, cases in examples():
                if args.only and name not in args.only:
                    continue
                result = evaluate(llama, directory, cases, args.cases, args.seed)
                rows.append({"model": model.name, "example": name, **result})
                print(
                    f"  {model.name} {name}: {result['correct']}/{result['cases']}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            llama.close()

    header = (
        "model",
        "example",
        "cases",
        "correct",
        "refused",
        "accuracy",
        "majority baseline",
        "lift",
        "s/case",
    )
    lines = []
    for row in rows:
        lines.append(
            (
                row["model"],
                row["example"],
                str(row["cases"]),
                str(row["correct"]),
                str(row["refused"]),
                f"{row['accuracy']:.0%}",
                f"{row['baseline']:.0%}",
                f"{row['lift']:.2f}x",
                f"{row['seconds_per_case']:.2f}",
            )
        )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for line in lines:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
