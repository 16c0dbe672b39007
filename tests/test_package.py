"""The house: no module of fashion_lab imports one that imports it back, and importing one
defines things and registers resolvers, nothing more."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fashion_lab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """fashion_lab module -> the fashion_lab modules it imports (anywhere in its file)."""
    names = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me, found = _module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[me] = {n for n in found if n in names and n != me and not me.startswith(f"{n}.")}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = imports()
    assert graph["fashion_lab.train"] >= {
        "fashion_lab.build",
        "fashion_lab.plan",
        "fashion_lab.life",
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start]
        )

    cycles = sorted(m for m in graph for n in graph[m] if reaches(n, m, {n}))
    assert cycles == [], f"these modules are on an import cycle: {cycles}"


def test_importing_the_task_installs_no_warning_filter_or_log_filter():
    libraries = "torch, pytorch_lightning, hydra, torchmetrics, matplotlib.pyplot, rich"
    code = (
        f"import logging, warnings, {libraries}; before = list(warnings.filters); "
        "import fashion_lab.train; "
        "assert warnings.filters == before, 'a warning filter was installed on import'; "
        "assert not logging.getLogger('pytorch_lightning.utilities.rank_zero').filters"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_private_internals_of_other_libraries_are_used_only_in_the_adapter():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "adapters.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and "._" in node.module:
                offenders.append(f"{path.name}:{node.lineno} from {node.module}")
    assert offenders == []
