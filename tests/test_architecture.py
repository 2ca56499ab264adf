"""The layout is the architecture: one namespace, no import cycles, Prefect only in the
orchestration layer (flows/, tasks/), and tasks that stay thin wrappers."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where each part of the lorascope namespace lives in the repository (pyproject's package-dir).
PACKAGE_DIRS = {
    "lorascope": ROOT / "lorascope",
    "lorascope.flows": ROOT / "flows",
    "lorascope.tasks": ROOT / "tasks",
    "lorascope.expectations": ROOT / "expectations",
    "lorascope.warehouse": ROOT / "warehouse",
}
ORCHESTRATION = ("lorascope.flows", "lorascope.tasks")


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import statement in `path` names (module level or in functions):
    for `from a import b`, both `a` and `a.b` (b may be a submodule)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + [node.module])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {module: {name for name in imported_names(path, module) if name in known} - {module}
            for module, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_namespace_has_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk found the code
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_only_flows_and_tasks_import_prefect() -> None:
    offenders = sorted(
        module for module, path in modules().items()
        if not module.startswith(ORCHESTRATION)
        and any(name == "prefect" or name.startswith("prefect.")
                for name in imported_names(path, module))
    )
    assert offenders == []


def test_tasks_are_thin_wrappers_over_library_functions() -> None:
    for module, path in modules().items():
        if not module.startswith("lorascope.tasks."):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 25, f"{module}.{node.name} is {length} lines: move logic out"
    lines = sum(len(p.read_text().splitlines()) for p in (ROOT / "tasks").glob("*.py"))
    assert lines < 400


def test_installed_lorascope_puts_only_lorascope_at_top_level(tmp_path: Path) -> None:
    """Outside the repository, the design's folders import only under lorascope."""
    code = ("import importlib.util as u, lorascope.tasks, lorascope.flows.pipeline, "
            "lorascope.warehouse, lorascope.expectations.instruction_data\n"
            "print([n for n in ('tasks', 'flows', 'warehouse', 'expectations') "
            "if u.find_spec(n)])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
