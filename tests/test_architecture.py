"""The shape of the code: imports run one way (defaults/errors → media → detect → plan → interpolate → pipeline →
cli), the model knows nothing of files, the core never imports the benchmark or training, there is no import
cycle, and importing the CLI or the package loads neither PyTorch nor the benchmark's scikit-image.

Imports are read from the source (every ``import``, also those inside functions, which are how a cycle hides), so
a violation fails here even when no test happens to execute the line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retime", "retime_bench", "retime_train")

#: The core's layers, lowest first: a module may import its own layer and those below it, never one above.
LAYERS = (
    ("retime.defaults", "retime.errors", "retime.metrics", "retime._process", "retime.__version__"),
    ("retime.media",),
    ("retime.detect", "retime.timing"),
    ("retime.plan",),
    ("retime.interpolate", "retime.refine"),
    ("retime.pipeline",),
    ("retime.executor", "retime.chunks"),
    ("retime.batch",),
    ("retime.cli", "retime.__main__"),
)
#: What the model may import besides itself: it knows nothing of files, containers, detection or the CLI.
MODEL = ("retime.interpolate", "retime.refine")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:`` (read by type checkers, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports when it runs (absolute and relative, at any depth of the file)."""
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from retime.media import encode` imports the submodule when one exists
            found.update(f"{module}.{alias.name}" for alias in node.names
                         if _source_of(f"{module}.{alias.name}") is not None)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[_module_name(path)] = {m for m in _imports(path) if _source_of(m) is not None}
    return graph


def _layer(module: str) -> int | None:
    if module == "retime":
        return 0  # the package's own __init__: the version and the lazy public API (checked separately)
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_every_core_module_has_a_layer():
    unplaced = [m for m in _graph() if m.startswith("retime.") and _layer(m) is None]
    assert not unplaced, f"add these modules to LAYERS in {Path(__file__).name}: {unplaced}"


def test_core_imports_run_one_way():
    graph = _graph()
    wrong = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
             for m in graph if m.startswith("retime.") for d in graph[m]
             if d != "retime" and _layer(d) is not None and _layer(d) > _layer(m)]
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_the_model_knows_nothing_of_files_or_the_cli():
    graph = _graph()
    wrong = [f"{m} imports {d}" for m in graph if m.startswith(MODEL) for d in graph[m]
             if not d.startswith(MODEL) and _layer(d) != 0]
    assert not wrong, "\n".join(wrong)
    engine = graph["retime.interpolate.engine"]
    assert not any(d.startswith("retime.refine") for d in engine), "the engine receives a refiner, never imports one"


def test_the_core_imports_no_benchmark_or_training_code():
    graph = _graph()
    wrong = [f"{m} imports {d}" for m in graph if m.split(".")[0] == "retime" for d in graph[m]
             if d.split(".")[0] != "retime"]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            # a package's __init__ re-exporting its submodules is not a cycle with them
            if dep == module or module.startswith(dep + ".") or dep.startswith(module + "."):
                continue
            if state.get(dep) == 1:
                cycles.append(" → ".join(path[path.index(dep):] + [dep]) if dep in path else f"{module} → {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module", ["retime", "retime.cli"])
def test_importing_the_cli_or_the_package_stays_light(module):
    """``retime --help`` and ``import retime`` must not pay for PyTorch, nor carry the benchmark's scikit-image."""
    heavy = ("torch", "skimage", "scipy", "retime_bench", "retime_train")
    code = (f"import sys, {module}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
