"""No import circle among the packages, and the layers import one way only.

The rule (docs/architecture.md, "Imports"): a package imports only packages
in lower layers. ``tcme.contract`` is the one contract model; ``tcme.wire``
builds on it, never the reverse. Every import counts, lazy ones inside
functions included (the old ``tcme.wire.contract`` <-> ``tcme.contract``
circle went through one).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("attestation", "enclave", "host", "tcme")

# Lower number = lower layer. An import must go to a strictly lower layer.
LAYERS = {
    "tcme": 0,  # the root package: the version string only
    "attestation": 0,
    "tcme.v1": 0,  # generated protobuf code
    "tcme.base": 1,
    "tcme.model": 1,
    "tcme.contract": 2,
    "tcme.wire": 3,
    "tcme.client": 4,
    "tcme.serving": 4,
    "enclave": 5,
    "host": 5,
    "tcme.cli": 6,
    "tcme.__main__": 7,
}


def package_of(module: str) -> str:
    """``tcme.wire.envelope`` -> ``tcme.wire``; ``attestation.tdx.quote`` -> ``attestation``."""
    parts = module.split(".")
    if parts[0] == "tcme" and len(parts) > 1:
        return f"tcme.{parts[1]}"
    return parts[0]


def import_edges() -> dict[tuple[str, str], list[str]]:
    """``{(importer package, imported package): [file:line, ...]}`` over the source tree."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            rel = path.relative_to(ROOT)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            source = package_of(module)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                    if node.module == "tcme":  # from tcme import contract (or __version__)
                        names = [
                            f"tcme.{alias.name}"
                            if (ROOT / "tcme" / alias.name).is_dir()
                            or (ROOT / "tcme" / f"{alias.name}.py").is_file()
                            else "tcme"
                            for alias in node.names
                        ]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] not in TOP:
                        continue
                    target = package_of(name)
                    if target != source:
                        edges[(source, target)].append(f"{rel}:{node.lineno}")
    return edges


def _cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_among_packages():
    edges = import_edges()
    cycle = _cycle(edges)
    if cycle:
        where = {f"{a} -> {b}": edges[(a, b)][:3] for a, b in pairwise(cycle)}
        raise AssertionError(f"import circle {' -> '.join(cycle)}: {where}")


def test_packages_import_lower_layers_only():
    wrong = {
        f"{source} -> {target}": files[:3]
        for (source, target), files in import_edges().items()
        if source in LAYERS and target in LAYERS and LAYERS[target] >= LAYERS[source]
    }
    assert not wrong, f"imports against the layer rule (docs/architecture.md): {wrong}"
    unknown = {p for edge in import_edges() for p in edge} - LAYERS.keys()
    assert not unknown, f"packages without a layer in docs/architecture.md and LAYERS: {unknown}"


def test_the_checker_sees_a_circle():
    """The check itself can fail: a lazy import back into a higher layer is caught."""
    edges = {("tcme.wire", "tcme.contract"): ["a"], ("tcme.contract", "tcme.wire"): ["b"]}
    assert _cycle(edges) in (
        ["tcme.contract", "tcme.wire", "tcme.contract"],
        ["tcme.wire", "tcme.contract", "tcme.wire"],
    )
