"""The layer order of docs/architecture.md, enforced: no package of ``celeriac`` imports one above it, and no
two modules of one package import each other at run time.

Every ``import`` in ``src/celeriac`` is read with `ast` (nothing is imported), including those under
``TYPE_CHECKING``: a type-only edge across packages is still an upward dependency. Inside one package a
type-only edge may close a cycle (``Consumer`` and its steps name each other in annotations); a run-time one
may not.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "celeriac"

# Bottom up. A package may import its own modules and any package of a lower rank, never one of the same or a
# higher rank. `celeriac` itself (the public re-exports) sits above the worker: only the faces import it.
LAYERS: list[set[str]] = [
    {"errors", "_version", "_redact"},
    {"_loops", "_resource", "_schemes", "_sockets", "settings", "schedules", "exceptions", "queues", "_otel"},
    {"_portal"},
    {"protocol", "signals"},
    {"_sqlite", "_redis", "_amqp"},
    {"transports", "backends"},
    {"events", "control"},
    {"canvas"},
    {"app"},
    {"pools"},
    {"worker"},
    {"beat"},
    {"celeriac"},  # the public re-exports of celeriac/__init__.py
    {"dashboard"},
    {"testing", "cli"},
    {"contrib"},  # integrations (the pytest plugin builds on testing)
    {"__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported celeriac module, only under TYPE_CHECKING, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[str, bool, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from celeriac.x import y` names the module celeriac.x.y when y is one
            targets = [f"{source}.{a.name}" if is_module(f"{source}.{a.name}") else source for a in node.names]
        else:
            continue
        found.extend((t, node.lineno in typing_only, node.lineno) for t in targets if t.split(".")[0] == "celeriac")
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "celeriac"


def rank_of(package: str) -> int:
    assert package in RANK, f"package celeriac.{package} has no layer: add it to LAYERS and docs/architecture.md"
    return RANK[package]


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    for path in SOURCES:
        if path.parent == ROOT and path.name == "__init__.py":
            continue
        rank_of(package_of(module_name(path)))


def test_no_import_goes_up_the_layers() -> None:
    upward: list[str] = []
    for path in SOURCES:
        here = module_name(path)
        if here == "celeriac":
            continue  # the public re-exports
        mine = package_of(here)
        for target, _typing_only, line in imports(path):
            theirs = package_of(target)
            if theirs != mine and rank_of(theirs) >= rank_of(mine):
                upward.append(f"{path.relative_to(SRC)}:{line} {here} -> {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_runtime_import_cycle_inside_a_package() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES:
        here = module_name(path)
        for target, typing_only, _line in imports(path):
            if not typing_only and target != here and package_of(target) == package_of(here):
                graph[here].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # A package's __init__ re-exporting its own modules is not a cycle of logic; skip cycles through a package root.
    real = [c for c in cycles if not any((SRC / m.replace(".", "/") / "__init__.py").exists() for m in c)]
    assert not real, "run-time import cycles:\n" + "\n".join(" -> ".join(c) for c in real)


@pytest.mark.parametrize("limit", [400])
def test_no_module_is_over_the_size_limit(limit: int) -> None:
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in SOURCES}
    over = {name: n for name, n in sizes.items() if n > limit}
    assert not over, f"modules over {limit} lines: {over}"
    counts = sorted(sizes.values())
    median = counts[len(counts) // 2]
    assert median <= 100, f"median module size is {median} lines"
