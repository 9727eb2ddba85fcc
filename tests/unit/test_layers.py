"""The layering rules of style.md, checked mechanically.

* Nothing outside ``gui/`` imports Qt: every other module imports with Qt blocked.
* Imports point down: drivers, sync and storage import no acquisition, gui or
  analysis; analysis imports no acquisition or gui; acquisition imports no
  analysis; nothing imports gui.
* The base modules (errors, configuration, the streams' value types) import no
  layer at all: every layer may import them.
* The GUI imports each name from the module that defines it, never through a
  re-export.
* Only ``acquisition/simulation.py`` in the product imports hardware_mocks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mmmelab

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("acquisition", "drivers", "sync", "storage", "gui", "analysis", "hardware_mocks")


def product_modules() -> list[tuple[str, Path]]:
    mods = []
    for layer in ("mmmelab", *LAYERS):
        for path in sorted((ROOT / layer).rglob("*.py")):
            rel = path.relative_to(ROOT / layer).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            prefix = "mmmelab" if layer == "mmmelab" else f"mmmelab.{layer}"
            if parts and parts[-1] == "__main__":
                continue
            mods.append((".".join([prefix, *parts]), path))
    return mods


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_module_outside_gui_imports_without_qt():
    mods = [m for m, _ in product_modules() if not m.startswith("mmmelab.gui")]
    assert len(mods) > 25
    script = f"""
import importlib, importlib.abc, sys
BLOCKED = ("PyQt6", "PyQt5", "PySide6", "PySide2", "pyqtgraph", "qtpy")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"Qt is not allowed here: {{name}}")
        return None
sys.meta_path.insert(0, Block())
for mod in {mods!r}:
    importlib.import_module(mod)
loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
assert not loaded, loaded
print("ok", len({mods!r}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_imports_point_down():
    forbidden = {
        "drivers": ("acquisition", "gui", "analysis", "storage", "hardware_mocks"),
        "sync": ("acquisition", "gui", "analysis", "drivers", "hardware_mocks"),
        "storage": ("acquisition", "gui", "analysis", "drivers", "hardware_mocks"),
        "analysis": ("acquisition", "gui", "drivers", "hardware_mocks"),
        "acquisition": ("gui", "analysis"),
        # the GUI reaches the engine only through acquisition (its controller's engine)
        "gui": ("drivers", "sync", "storage", "analysis", "hardware_mocks"),
        "hardware_mocks": ("acquisition", "gui", "analysis", "storage"),
    }
    # the coding tool is the GUI's engine-free side: its windows reach a session only
    # through their Qt-free models, as the console reaches the engine through its controller
    models = {"mmmelab.analysis.annotations.coding", "mmmelab.analysis.annotations.adjudication"}
    # value types are imported from where they are defined (design.md): the event codes
    values = {"mmmelab.sync.codes"}
    bad = []
    for mod, path in product_modules():
        layer = mod.split(".")[1] if mod.count(".") else ""
        for name in imported_names(path):
            if layer == "gui" and name in models | values:
                continue
            for target in forbidden.get(layer, ()):
                if name.startswith(f"mmmelab.{target}"):
                    bad.append(f"{mod} imports {name}")
    assert not bad, bad


#: the base modules of the root package; the others there (the CLI, the benchmarks, the
#: exports) are the top that joins the layers
BASE = {
    "mmmelab",
    "mmmelab.errors",
    "mmmelab.config",
    "mmmelab.protocol",
    "mmmelab.participant",
    "mmmelab.tomlcheck",
    "mmmelab.streams",
    "mmmelab.progress",
}


def test_base_modules_import_no_layer():
    mods = dict(product_modules())
    assert BASE <= set(mods)
    bad = [
        f"{mod} imports {name}"
        for mod in sorted(BASE)
        for name in imported_names(mods[mod])
        if name.startswith("mmmelab.") and name not in BASE
    ]
    assert not bad, bad


def _defined(path: Path) -> set[str]:
    """The names a module defines at its top level (not those it imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_gui_imports_names_from_where_they_are_defined():
    mods = dict(product_modules())
    bad = []
    for mod, path in mods.items():
        if not mod.startswith("mmmelab.gui"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module in mods):
                continue
            defined = _defined(mods[node.module])
            for alias in node.names:
                if f"{node.module}.{alias.name}" in mods:  # a module, not a name
                    continue
                if alias.name not in defined:
                    bad.append(f"{mod} imports {alias.name} from {node.module}, which "
                               f"does not define it")  # fmt: skip
    assert not bad, bad


def test_only_the_simulation_launcher_imports_hardware_mocks():
    allowed = {"mmmelab.acquisition.simulation"}
    users = {
        mod
        for mod, path in product_modules()
        if not mod.startswith("mmmelab.hardware_mocks")
        and any(n.startswith("mmmelab.hardware_mocks") for n in imported_names(path))
    }
    assert users == allowed


def test_package_layout_maps_the_fixed_folders():
    import importlib

    for layer in LAYERS:
        mod = importlib.import_module(f"mmmelab.{layer}")
        assert Path(mod.__file__).resolve().parent == ROOT / layer
    assert Path(mmmelab.__file__).resolve().parent == ROOT / "mmmelab"


MAX_LINES = 450


def test_no_module_of_the_product_is_over_450_lines():
    """A module a newcomer reads in one sitting: past 450 lines it holds more than one
    job and is split by job (the names say which is too long)."""
    long = {name: n for name, path in product_modules()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_the_developer_tools_stay_out_of_the_product():
    """``gui/devtools`` (benchmarks, the scripted session, screenshots) drives the GUI;
    only the CLI's top reaches it, and no window or layer imports it."""
    users = {
        mod
        for mod, path in product_modules()
        if not mod.startswith("mmmelab.gui.devtools")
        and any(n.startswith("mmmelab.gui.devtools") for n in imported_names(path))
    }
    assert users and all(m.count(".") == 1 for m in users), users  # mmmelab.<top module>
