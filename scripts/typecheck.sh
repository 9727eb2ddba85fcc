#!/usr/bin/env bash
# mypy on the package as it installs: a tree of links (build/typecheck/mmmelab) puts
# each layer folder where the wheel puts it (mmmelab.acquisition = acquisition/, ...),
# so mypy follows every import between the layers instead of taking it as Any.
# The settings are pyproject.toml's [tool.mypy]. Called by scripts/test.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="$here/build/typecheck"
rm -rf "$tree"
mkdir -p "$tree/mmmelab"
for path in "$here"/mmmelab/*; do
    [[ "$(basename "$path")" == __pycache__ ]] || ln -s "$path" "$tree/mmmelab/"
done
for layer in acquisition drivers sync storage gui analysis hardware_mocks; do
    ln -s "$here/$layer" "$tree/mmmelab/$layer"
done
cd "$tree"
exec "$here/.venv/bin/python" -m mypy --config-file "$here/pyproject.toml" \
    --cache-dir "$here/.mypy_cache" -p mmmelab "$@"
