"""The shape of the code: packages import one way only, and no module grows past 400 lines."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _room(module: str) -> str:
    """A module's package below ``gateway``, or the module itself when it is loose there."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module


def package_imports() -> dict[str, set[str]]:
    """Which packages (and loose top-level modules) each one imports."""
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != "gateway" and _room(target) != _room(name):
                    edges[_room(name)].add(_room(target))
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between packages, if there is any."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    edges = package_imports()
    assert "store" in edges["jobs"]  # the walk sees imports at all
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])


def test_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_lower_packages_never_import_higher_ones() -> None:
    edges = package_imports()
    for low, high in [("store", "accounts"), ("store", "limits"), ("policy", "accounts")]:
        assert high not in edges[low], f"{low} imports {high}"
    for package in ("store", "policy", "accounts", "limits", "relay", "upstream", "jobs"):
        assert "http" not in edges[package], f"{package} imports http"


def test_loose_modules_are_only_the_app_its_settings_and_errors() -> None:
    loose = {p.stem for p in ROOT.glob("*.py")}
    assert loose == {"__init__", "__main__", "app", "settings", "errors"}


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT.parent)): count
        for path in ROOT.rglob("*.py")
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
