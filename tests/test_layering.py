"""The import graph under advjax/ (TYPE_CHECKING imports included): no circle, and
losses/ is math on arrays that imports nothing from models/, data/ or train/ (issue 34)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in its text, resolved to modules
    (``from advjax.models import propagation`` names advjax.models.propagation)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


def import_graph(package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports} for every module of `package`."""
    paths = sorted((ROOT / package).rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(path, modules) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None. A package's __init__ importing its
    own submodules is the package's face, not a circle: edges from a package to a module
    under it are left out."""
    edges = {
        module: {t for t in targets if not t.startswith(module + ".")}
        for module, targets in graph.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_find_cycle_finds_a_circle_and_accepts_a_package_face():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.x"}, "p.x": {"q"}, "q": set()}) is None


def test_no_import_circle_under_advjax():
    assert find_cycle(import_graph("advjax")) is None


def test_losses_import_no_models_data_or_train():
    graph = import_graph("advjax")
    higher = ("advjax.models", "advjax.data", "advjax.train")
    wrong = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("advjax.losses")
        for target in targets
        if target.startswith(higher)
    }
    assert wrong == set()
