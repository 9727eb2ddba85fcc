#!/usr/bin/env bash
# Regenerate the lock files that scripts/setup.sh installs from (requirements/*.txt),
# from pyproject.toml's dependencies, with uv. Run it on purpose (to take newer
# releases), then run ./scripts/test.sh before committing the new locks.
#   requirements/rig.txt     the recorder and the analyses (no extras)
#   requirements/models.txt  plus [models] (PyTorch, braindecode)
#   requirements/dev.txt     plus [dev] and [models]: what the tests run with
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
compile rig.txt
compile models.txt --extra models
compile dev.txt --extra dev --extra models
