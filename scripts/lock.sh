#!/usr/bin/env bash
# Regenerate the lock files that scripts/setup.sh installs from (requirements/*.txt),
# from pyproject.toml's dependencies, with uv. Run it on purpose (to take newer
# releases), then run ./scripts/test.sh before committing the new locks.
#   requirements/dev.txt       every extra ([dev,sim,analysis,models]): what the tests run with
#   requirements/rig.txt       the recording PC (no extras)
#   requirements/sim.txt       plus [sim]: the simulated lab
#   requirements/analysis.txt  plus [sim,analysis]: the analyses and the demo
#   requirements/models.txt    plus [models] (PyTorch, braindecode)
# dev.txt is resolved first and the others within it, so every lock has the same
# version of each package it shares.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
[[ -x .venv/bin/python ]] || ./scripts/setup.sh
.venv/bin/python -m pip install -q uv
constraints=(-c requirements/pins.txt)
# a machine whose pip is capped to the releases on its own disk (see that file)
[[ -f /etc/xdg/pip/constraints.txt ]] && constraints+=(-c /etc/xdg/pip/constraints.txt)
compile() {
    local out="$1"; shift
    .venv/bin/uv pip compile pyproject.toml "$@" --universal --python-version 3.11 \
        "${constraints[@]}" --no-header --quiet -o "requirements/$out"
    echo "requirements/$out: $(grep -c '^[a-zA-Z]' "requirements/$out") packages"
}
compile dev.txt --extra dev --extra sim --extra analysis --extra models
constraints+=(-c requirements/dev.txt)
compile rig.txt
compile sim.txt --extra sim
compile analysis.txt --extra sim --extra analysis
compile models.txt --extra sim --extra analysis --extra models
