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


def private_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of each private internal a module's code reaches: `x._name` (not on self or
    cls), `getattr(x, "_name")`, an import from a private module, and an attribute set on an
    imported module (a library patched)."""
    imported = {
        (a.asname or a.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in node.names
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append((node.lineno, f".{node.attr}"))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ATTRIBUTE_CALLS:
            for name in node.args[1:2]:
                text = str(getattr(name, "value", ""))
                if text.startswith("_") and not text.startswith("__"):
                    found.append((node.lineno, f"{node.func.id}(..., {name.value!r})"))
        if isinstance(node, ast.ImportFrom) and node.module and "._" in node.module:
            found.append((node.lineno, f"from {node.module}"))
        if isinstance(node, ast.Assign):
            for target in node.targets:
                module = getattr(getattr(target, "value", None), "id", None)
                if isinstance(target, ast.Attribute) and module in imported - STDLIB:
                    found.append((node.lineno, f"{module}.{target.attr} ="))
    return sorted(found)


ATTRIBUTE_CALLS = ("getattr", "hasattr", "setattr")
STDLIB = sys.stdlib_module_names  # its settable hooks (threading.excepthook) are public


def test_the_private_use_finder_finds_each_kind():
    code = (
        "import torch\nfrom submitit.local import local\nfrom hydra._internal import x\n"
        "a = torch.cpu._is_amx_tile_supported\nb = getattr(torch.cpu, '_is_avx512')\n"
        "local.start_controller = None\nself._mine = 1\n"
    )
    assert [line for line, _ in private_uses(ast.parse(code))] == [3, 4, 5, 6]


def test_private_internals_of_other_libraries_are_used_only_in_the_adapter():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "adapters.py":
            continue
        for line, what in private_uses(ast.parse(path.read_text())):
            offenders.append(f"{path.relative_to(PACKAGE)}:{line} {what}")
    assert offenders == []


def test_the_networks_know_nothing_of_the_config():
    """models/ raises plain errors in the networks' terms; build.py adds the config key."""
    for path in (PACKAGE / "models").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fashion_lab"):
                assert node.module.startswith("fashion_lab.models"), f"{path.name}: {node.module}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "model." not in node.value and "conf/" not in node.value, path.name
            if isinstance(node, ast.Name):
                assert node.id != "UserError", f"{path.name}:{node.lineno}"


REGISTRIES = {"fashion_lab.models.registry": {"_MODELS"}}
"""Module-level containers filled once, at import, by a decorator (timm's registry pattern)."""


def test_no_module_holds_state_that_changes_while_it_runs():
    """No `global` statement, and no module-level list, dict or set (constants are tuples or
    frozen); the run's state lives in objects (`life.RunRecord`, a lock, a sweep's report)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        allowed = REGISTRIES.get(_module_name(path), set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found.append(f"{path.name}:{node.lineno} global {', '.join(node.names)}")
        for node in tree.body:
            value = getattr(node, "value", None)
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            names = {getattr(t, "id", None) for t in targets}
            mutable = isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp)
            if mutable and not names <= allowed:
                found.append(f"{path.name}:{node.lineno} {', '.join(map(str, names))}")
    assert found == []


LONGEST = 60
"""Lines a function of fashion_lab may take, its docstring included."""


def test_no_function_is_longer_than_the_house_allows():
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONGEST
    ]
    assert long == []
