#!/usr/bin/env bash
# Refresh the README screenshots: a short demo session in the GUI on the simulated
# lab, under a virtual X server (Debian's xvfb, installed here if missing).
#   ./scripts/screenshots.sh [OUT_DIR]     (default docs/screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
./scripts/setup.sh
if ! command -v xvfb-run >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then runner=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then runner="sudo"
    else echo "screenshots: xvfb is needed: sudo apt-get install xvfb" >&2; exit 1
    fi
    echo "screenshots: installing xvfb" >&2
    $runner apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $runner apt-get install -y -qq xvfb xauth >/dev/null
fi
# one 1920x1080 screen: the three windows open side by side (the lab config asks for
# three screens), and desktop.png shows them together
xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/mmme screenshots --out "$out"
