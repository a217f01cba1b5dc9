"""The package's folders are its architecture: wings on floors, each importing only the floors
below it, no import cycles, data and models side by side, the certification mathematics free
of torch, and the commands on top (no library module imports one)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import idrs_lightning

ROOT = Path(__file__).resolve().parents[1]
#: The package's root modules: the ground floor every wing may use.
GROUND = {"validation", "errors", "settings", "noise", "normalization", "atomic_files"}
GROUND |= {"directory_lock"}
#: Wings from the bottom up: a wing imports the ground and the wings before it only.
FLOORS = [
    ["certification"],
    ["smoothing"],
    ["sigma"],
    ["data", "models"],  # side by side: neither imports the other
    ["reporting"],
    ["training"],
    ["certify_job", "callbacks"],  # side by side: neither imports the other
    ["dual"],  # dual randomized smoothing: the router's training, above the job it feeds
    ["paper"],
]
#: Commands that only run (``[project.scripts]``, ``python -m``): they sit on top of every wing.
COMMANDS = {
    "idrs_lightning.sigma.precompute",
    "idrs_lightning.reporting.compare",
    "idrs_lightning.training.command",
    "idrs_lightning.training.__main__",
    "idrs_lightning.certify_job.command",
    "idrs_lightning.certify_job.__main__",
    "idrs_lightning.dual.command",
    "idrs_lightning.dual.__main__",
    "idrs_lightning.paper.__main__",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in [*(ROOT / "idrs_lightning").rglob("*.py"), *(ROOT / "callbacks").rglob("*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Our modules that ``path`` imports when it runs (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    imported = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                imported.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported & modules


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _runtime_imports(path, set(modules)) - {name} for name, path in modules.items()}


def _wing(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "callbacks":
        return "callbacks"
    if len(parts) == 1 or parts[1] in GROUND:
        return "ground"
    return parts[1]


def _floor(wing: str) -> int:
    if wing == "ground":
        return -1
    return next(i for i, floor in enumerate(FLOORS) if wing in floor)


def test_every_module_lives_in_a_wing_or_on_the_ground_floor() -> None:
    for module in _graph():
        wing = _wing(module)
        assert wing == "ground" or any(wing in floor for floor in FLOORS), module


def test_wings_import_only_the_floors_below_them() -> None:
    upward = [
        f"{module} -> {imported}"
        for module, imports in _graph().items()
        if module not in COMMANDS
        for imported in imports
        if _wing(imported) != _wing(module)
        and _floor(_wing(imported)) >= _floor(_wing(module))
        and imported != "idrs_lightning"
    ]
    assert not upward, upward


def test_no_library_module_imports_a_command() -> None:
    importers = [
        f"{module} -> {imported}"
        for module, imports in _graph().items()
        if module not in COMMANDS
        for imported in imports & COMMANDS
    ]
    assert not importers, importers


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            assert state.get(imported) != 1, " -> ".join([*path, module, imported])
            if imported not in state:
                visit(imported, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_certification_mathematics_runs_without_torch() -> None:
    code = (
        "import sys, idrs_lightning.certification; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_package_exports_resolve() -> None:
    for name in idrs_lightning.__all__:
        value = getattr(idrs_lightning, name)
        assert importlib.import_module(value.__module__)


LIBRARY = ("idrs_lightning", "callbacks")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(source: str) -> list[str]:
    """The library's private names that ``source`` uses: imported (``from idrs_lightning.x
    import _y``, a private module), read as attributes of a library name (``toy._rows``,
    ``idrs_lightning.paper.toy._rows``) or named in a dotted string (``monkeypatch.setattr``)."""
    tree = ast.parse(source)
    found, bound = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARY:
            assert node.module is not None
            for alias in node.names:
                bound.add(alias.asname or alias.name)
                if _private(alias.name) or any(map(_private, node.module.split("."))):
                    found.append(f"line {node.lineno}: {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARY:
                    bound.add(alias.asname or alias.name.split(".")[0])
                    if any(map(_private, alias.name.split("."))):
                        found.append(f"line {node.lineno}: {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = node.value.split(".")
            if parts[0] in LIBRARY and len(parts) > 1 and any(map(_private, parts)):
                found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_the_private_name_check_finds_each_kind_of_use() -> None:
    source = (
        "import idrs_lightning.paper.toy\n"
        "from idrs_lightning.paper import toy, vision as v\n"
        "from idrs_lightning.certification._quadric import q\n"
        "from idrs_lightning.reporting.metrics import _hidden\n"
        "toy._rows(); v._rows; idrs_lightning.paper.toy._rows\n"
        "setattr_target = 'idrs_lightning.data.datamodule._split'\n"
        "self._mine; toy.__name__; other._theirs; toy.rows\n"
    )
    assert sorted(use.split(":")[0] for use in _private_uses(source)) == [
        "line 3",
        "line 4",
        "line 5",
        "line 5",
        "line 5",
        "line 6",
    ]


def test_tests_use_only_public_names_of_the_library() -> None:
    uses = [
        f"{path.relative_to(ROOT)} {use}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for use in _private_uses(path.read_text())
    ]
    assert not uses, uses
