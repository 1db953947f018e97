"""One layout for every service, a pure domain, and no import circles anywhere (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.roster import service_names
from tests.support import REPO_ROOT

PACKAGES = ("services", "shared")
# What a domain module may not touch: I/O, frameworks and the wire (translate at the edge).
IMPURE = ("shared.bus", "sqlalchemy", "fastapi", "starlette", "redis", "httpx", "faststream", "uvicorn", "presidio",
          "torch", "transformers", "open")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py")}


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules imported when `path` is imported: module level, outside `if TYPE_CHECKING:`, resolved to known
    modules (`from a.b import c` counts as a.b.c when that is a module, else a.b)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in known else node.module)

    visit(tree.body)
    return {name for name in found if name in known}


def test_no_import_circles() -> None:
    known = modules()
    graph = {name: top_level_imports(path, set(known)) for name, path in known.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("service", service_names())
def test_every_service_has_the_same_shape(service: str) -> None:
    root = REPO_ROOT / "services" / service
    for part in ("domain", "adapters", "entrypoints"):
        assert (root / part / "__init__.py").exists(), f"services/{service}/{part}/"
    for part in ("handlers.py", "bootstrap.py", "__main__.py"):
        assert (root / part).exists(), f"services/{service}/{part}"


def test_domain_code_is_pure() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "services").glob("*/domain/*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                names = ["open"]
            offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] in IMPURE
                          or n.startswith("shared.bus")]
    assert offenders == [], offenders
