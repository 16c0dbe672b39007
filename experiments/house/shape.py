"""Lines per module and the longest functions of fashion_lab at a commit (default: the working
tree): `python experiments/house/shape.py [REV]`."""

import ast
import subprocess
import sys

rev = sys.argv[1] if len(sys.argv) > 1 else None


def files() -> dict[str, str]:
    if rev is None:
        names = subprocess.run(
            ["git", "ls-files", "fashion_lab"], capture_output=True, text=True, check=True
        ).stdout.split()
        return {n: open(n).read() for n in names if n.endswith(".py")}
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "fashion_lab"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        n: subprocess.run(["git", "show", f"{rev}:{n}"], capture_output=True, text=True).stdout
        for n in names
        if n.endswith(".py")
    }


sources = files()
lines = {n: s.count("\n") for n, s in sources.items()}
functions = sorted(
    (
        (node.end_lineno - node.lineno + 1, f"{n.removeprefix('fashion_lab/')[:-3]}.{node.name}")
        for n, s in sources.items()
        for node in ast.walk(ast.parse(s))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ),
    reverse=True,
)
print(f"{rev or 'working tree'}: {sum(lines.values())} lines in {len(lines)} modules")
print(" ".join(f"{n.removeprefix('fashion_lab/')}={c}" for n, c in sorted(lines.items())))
print("longest functions: " + ", ".join(f"{name} {length}" for length, name in functions[:8]))
