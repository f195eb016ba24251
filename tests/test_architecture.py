"""The code map holds: packages import only downward, no module imports itself round a circle,
readers stay free of PyTorch, every package the code imports is declared, and the tests mirror it.

Imports inside functions and under ``TYPE_CHECKING`` count: they are imports all the same.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import tomllib

from tests.helpers.config import REPO

PACKAGE = REPO / "medviz"

#: Lowest first. A package may import its own layer's and lower layers' packages, never a higher one.
#: Within a layer, imports must not go both ways (checked by the circle test).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("medviz.errors", "medviz.bulk", "medviz.instantiate", "medviz.runtime", "medviz.text"),
    ("medviz.store", "medviz.augment"),
    ("medviz.data",),
    ("medviz.models",),
    ("medviz.methods",),
    ("medviz.runs",),
    ("medviz.maps", "medviz.evaluation"),
    ("medviz.training",),
    ("medviz.cli", "medviz.__main__"),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every medviz module ``name`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _layer(package: str) -> int:
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"{package} is in no layer of LAYERS: add it where it belongs")


def test_packages_import_only_their_own_layer_or_below():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(_package(target)) > _layer(_package(module))
    ]
    assert not upward, "imports reaching up:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_or_package_imports_itself_round_a_circle():
    graph = _graph()
    assert _cycles(graph) == []
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        packages[_package(module)].update(_package(t) for t in targets if _package(t) != _package(module))
    assert _cycles(packages) == []


def test_the_circle_finder_finds_circles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_at_most_eight_modules_stay_at_the_top_of_medviz_data():
    top = sorted(p.name for p in (PACKAGE / "data").glob("*.py"))
    assert len(top) <= 8, top


def test_file_readers_import_no_pytorch():
    """Ingest workers import only the readers; PyTorch would cost each of them seconds to start."""
    readers = sorted(_module_name(p) for p in (PACKAGE / "data" / "readers").glob("*.py"))
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in readers)
        + "heavy = sorted(m for m in ('torch', 'lightning', 'torchvision') if m in sys.modules)\n"
        + "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert len(readers) >= 6
    assert done.stdout.strip() == ""


def _declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = set()
    for spec in specs:
        name = spec
        for stop in "<>=!~[; ":
            name = name.split(stop)[0]
        names.add(name.lower().replace("_", "-"))
    return names


def _third_party_imports(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("medviz", "tests")}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    by_module = importlib.metadata.packages_distributions()
    return {module: {d.lower().replace("_", "-") for d in by_module.get(module, [])} for module in modules}


#: Declared packages the code uses through another one, never by an import of its own.
USED_THROUGH = {"pyarrow": "pandas reads and writes Parquet with it (read_parquet, to_parquet)"}


def test_every_package_the_code_imports_is_declared_and_every_declared_one_is_imported():
    code = [*PACKAGE.rglob("*.py"), REPO / "train.py", REPO / "evaluate.py"]
    imported = _distributions(_third_party_imports(code))
    declared = _declared()
    undeclared = {module: dists for module, dists in imported.items() if not dists & declared}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    used = set().union(*imported.values()) | set(USED_THROUGH)
    assert declared - used == set(), "declared in [project] dependencies but imported nowhere"


def test_every_package_the_tests_import_is_declared_for_development():
    imported = _distributions(_third_party_imports(list((REPO / "tests").rglob("*.py"))))
    allowed = _declared() | _declared("dev")
    undeclared = {module: dists for module, dists in imported.items() if not dists & allowed}
    assert not undeclared, f"imported by tests but declared nowhere: {undeclared}"


def test_the_tests_mirror_the_package_and_share_helpers_from_tests_helpers():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.parent.name for p in (REPO / "tests").glob("*/__init__.py")} - {"helpers"}
    assert folders <= packages, f"test folders without a package: {folders - packages}"
    importing_conftest = [
        str(p.relative_to(REPO))
        for p in (REPO / "tests").rglob("*.py")
        if p.name != "conftest.py" and "conftest" in _third_party_imports([p]) | _local_imports(p)
    ]
    assert importing_conftest == []


def _local_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(node.module.split("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.update(alias.name.split("."))
    return names


@pytest.mark.parametrize("package", [layer for layers in LAYERS for layer in layers])
def test_every_layered_package_exists(package):
    assert package in _modules(), f"LAYERS names {package}, which is not a module of medviz"
