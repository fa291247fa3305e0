"""Example directories: a contract file, the inputs each party submits, generated cases.

Layout of ``examples/NAME/``::

    contract.toml        the contract, a template (parties by name; contract.json also read)
    inputs.toml          optional: one table per party, ``[alice] wealth = 12``
    cases.py             optional: ``cases(rng, count) -> [(inputs per party, expected outputs)]``

``example_case`` picks, in order: ``inputs.toml``; the first generated case
(``cases.py``, with its expected answer); or values drawn at random from the
input constraints (integer, number and enum inputs only). ``--generate SEED``
skips ``inputs.toml``. ``load_cases`` gives bench/accuracy.py its
cases of known answer. ``cases.py`` is code from the example directory: it is
imported only when generated cases are asked for.
"""

from __future__ import annotations

import importlib.util
import random
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from attestation.errors import ParseError, UsageError
from tcme.contract.constraints import NumberConstraint
from tcme.contract.model import Contract

Case = tuple[dict[str, dict[str, Any]], dict[str, str]]


def read_inputs(path: Path, contract: Contract) -> dict[str, dict[str, Any]]:
    """``inputs.toml`` as ``{party: {input: value}}``, one table for every party."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError("inputs.read", f"cannot read {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ParseError("inputs.toml", f"{path}: {err}") from err
    names = [p.name for p in contract.parties]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError("inputs.party", f"{path} has tables for unknown parties: {unknown}")
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ParseError("inputs.toml", f"{path}: [{name}] must be a table")
        out[name] = dict(table)
    return out


def load_cases(directory: Path) -> Callable[[random.Random, int], list[Case]] | None:
    """The ``cases`` function of ``directory/cases.py``, or None when there is none."""
    source = Path(directory) / "cases.py"
    if not source.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"tcme_example_{Path(directory).name}", source)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise UsageError("example.cases", f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = getattr(module, "cases", None)
    if not callable(cases):
        raise UsageError("example.cases", f"{source} defines no cases(rng, count) function")
    return cases


def random_inputs(contract: Contract, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Values drawn from the constraints; only integer, number and enum inputs can be drawn."""
    out: dict[str, dict[str, Any]] = {p.name: {} for p in contract.parties}
    for spec in contract.inputs:
        if spec.type == "integer" and spec.minimum is not None and spec.maximum is not None:
            value: Any = rng.randint(spec.minimum, spec.maximum)
        elif spec.type == "enum" and spec.values:
            value = rng.choice(spec.values)
        elif spec.type == "number" and isinstance(spec.constraint, NumberConstraint):
            low = spec.constraint.minimum
            high = spec.constraint.maximum
            value = str(low + (high - low) * Decimal(rng.randint(0, 100)) / 100)
        else:
            raise UsageError(
                "inputs.generate",
                f"cannot draw a value for {spec.type} input {spec.name!r}: give inputs.toml",
            )
        out[spec.party][spec.name] = value
    return out


@dataclass(frozen=True)
class ExampleCase:
    """What ``tcme run`` submits: values per party, where they came from, the known answer.

    ``expected`` is the answer a generated case (``cases.py``) knows, else None.
    """

    values: dict[str, dict[str, Any]]
    source: str
    expected: dict[str, str] | None = None


def example_case(directory: Path, contract: Contract, *, seed: int | None = None) -> ExampleCase:
    """The case ``tcme run`` submits.

    With ``seed`` None, ``inputs.toml`` wins when present; otherwise (or with a
    seed) a generated case with its expected answer, else values drawn from
    the constraints.
    """
    directory = Path(directory)
    if seed is None and (directory / "inputs.toml").is_file():
        return ExampleCase(read_inputs(directory / "inputs.toml", contract), "from inputs.toml")
    rng = random.Random(seed if seed is not None else 0)
    cases = load_cases(directory)
    label = f" (seed {seed})" if seed is not None else ""
    if cases is not None:
        generated, expected = cases(rng, 1)[0]
        return ExampleCase(generated, f"generated by cases.py{label}", dict(expected))
    return ExampleCase(
        random_inputs(contract, rng), f"drawn at random within the input constraints{label}"
    )


def merge_values(inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{party: {name: value}}`` → ``{name: value}`` (input names are unique per contract)."""
    merged: dict[str, Any] = {}
    for values in inputs.values():
        merged.update(values)
    return merged
