#!/usr/bin/env bash
# Set up mmme-lab on a fresh Debian/Ubuntu machine: the system libraries Qt needs,
# a virtual environment in .venv, and the package with its dependencies.
# Idempotent: re-running only installs what is missing or changed.
#   scripts/setup.sh            a recording PC: the engine, drivers, console, rig checks
#   scripts/setup.sh --sim      plus the simulated lab ([sim])
#   scripts/setup.sh --analysis plus the simulated lab and the analyses ([sim,analysis]):
#                               an analyst's or coder's machine, and the demo
#   scripts/setup.sh --models   plus the deep recognisers (PyTorch: about 6 GB installed)
#   scripts/setup.sh --dev      everything, and the test and lint tools (the tests train
#                               the models on CPU and open the QC report in Debian's
#                               chromium)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
extras="" lock="requirements/rig.txt"
case "${1:-}" in
    "") ;;
    --sim) extras="[sim]" lock="requirements/sim.txt" ;;
    --analysis) extras="[sim,analysis]" lock="requirements/analysis.txt" ;;
    --models) extras="[sim,analysis,models]" lock="requirements/models.txt" ;;
    --dev) extras="[dev,sim,analysis,models]" lock="requirements/dev.txt" ;;
    *) printf '[setup] ERROR: unknown option %s (use --sim, --analysis, --models or --dev)\n' "$1" >&2
       exit 2 ;;
esac

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Python >= 3.11 -----------------------------------------------------------
python=""
for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$(command -v "$candidate")"; break
    fi
done
[[ -n "$python" ]] || die "Python 3.11 or newer is needed (apt-get install python3.11 python3.11-venv)"

# --- system packages (Qt's libraries, venv) -----------------------------------
apt_install() {
    local runner=""
    if [[ $(id -u) -eq 0 ]]; then runner=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then runner="sudo"
    else
        die "missing system packages: $* - install them with: sudo apt-get install $*"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing system libraries ($*) and no apt-get here; install their equivalents"
    say "installing system packages: $*"
    $runner apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $runner apt-get install -y -qq "$@" >/dev/null
}

missing=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libEGL.so.1'           || missing+=(libegl1)
have_lib 'libGL.so.1'            || missing+=(libgl1)
have_lib 'libxkbcommon.so.0'     || missing+=(libxkbcommon0)
have_lib 'libxkbcommon-x11.so.0' || missing+=(libxkbcommon-x11-0)
have_lib 'libfontconfig.so.1'    || missing+=(libfontconfig1)
have_lib 'libdbus-1.so.3'        || missing+=(libdbus-1-3)
have_lib 'libglib-2.0.so.0'      || missing+=(libglib2.0-0)
have_lib 'libxcb-cursor.so.0'    || missing+=(libxcb-cursor0)
have_lib 'libxcb-icccm.so.4'     || missing+=(libxcb-icccm4)
have_lib 'libxcb-keysyms.so.1'   || missing+=(libxcb-keysyms1)
have_lib 'libxcb-shape.so.0'     || missing+=(libxcb-shape0)
have_lib 'libpulse.so.0'         || missing+=(libpulse0)       # Qt Multimedia (clip sound)
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3-venv")
# the tests open the QC report in a real headless browser
if [[ "$extras" == "[dev,sim,analysis,models]" ]]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if ((${#missing[@]})); then apt_install "${missing[@]}"; fi

# --- virtual environment and the package --------------------------------------
if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv with $python"
    "$python" -m venv .venv
fi
stamp=".venv/.mmme-installed${extras}"
want="$(cat pyproject.toml "$lock" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    # the locked versions (scripts/lock.sh makes the lock), then the package itself
    say "installing mmme-lab${extras} and its dependencies from $lock into .venv (a few minutes the first time)"
    log=".venv/install.log"
    if ! { .venv/bin/python -m pip install -r "$lock" &&
           .venv/bin/python -m pip install --no-deps -e ".${extras}" &&
           .venv/bin/python -m pip check; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip could not install the dependencies (full log: $log)"
    fi
    .venv/bin/python -c 'import mmmelab, pylsl, PyQt6, h5py, numba, xiapipy.xidefs' ||
        die "the installation is incomplete (see the messages above)"
    echo "$want" > "$stamp"
fi
say "ready: $here/.venv"
