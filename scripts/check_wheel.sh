#!/usr/bin/env bash
# Build the wheel and prove it works on its own: the package, its subpackages and
# shipped data come from the wheel (not the source tree) and the CLI runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! .venv/bin/python -m build --wheel --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2; echo "wheel build failed" >&2; exit 1
fi
wheel="$(ls "$tmp"/dist/*.whl)"
.venv/bin/python -m pip install -q --no-deps --target "$tmp/site" "$wheel"
cd "$tmp"
PYTHONPATH="$tmp/site" "$here/.venv/bin/python" - "$tmp/site" "$here" <<'PY'
import importlib, pathlib, sys
site = pathlib.Path(sys.argv[1]).resolve()
import mmmelab
assert pathlib.Path(mmmelab.__file__).resolve().is_relative_to(site), mmmelab.__file__
# every package of the source tree (a folder with __init__.py under a layer) must be in
# the wheel: a package left out of pyproject.toml's list would import from nowhere
src = pathlib.Path(sys.argv[2])
layers = ("acquisition", "drivers", "sync", "storage", "gui", "analysis", "hardware_mocks")
subs = ["cli", "config", "protocol", "participant", "streams"]
for layer in layers:
    for init in sorted((src / layer).rglob("__init__.py")):
        subs.append(".".join(init.parent.relative_to(src).parts))
for sub in subs:
    mod = importlib.import_module(f"mmmelab.{sub}")
    assert pathlib.Path(mod.__file__).resolve().is_relative_to(site), (
        f"mmmelab.{sub} is not in the wheel: add it to pyproject.toml's packages")
from mmmelab.config import load_lab, shipped
from mmmelab.protocol import load_protocol
assert len(load_protocol(shipped("protocols", "mmme")).trial_order) == 42
load_lab(shipped("labs", "simulated"))
assert (pathlib.Path(mmmelab.__file__).parent / "data" / "lsl_api.cfg").is_file()
# the wheel ships the product, not its tests
assert not (pathlib.Path(mmmelab.__file__).parent / "tests").exists(), "tests in the wheel"
print("wheel ok:", pathlib.Path(sys.argv[1]).name, mmmelab.__version__)
PY
PYTHONPATH="$tmp/site" "$here/.venv/bin/python" -m mmmelab --version
# the extras: the base install records nothing simulated and says so; [sim] does
"$here/.venv/bin/python" "$here/scripts/extras_check.py" "$wheel" "$tmp"
