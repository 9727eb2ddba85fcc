#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: lint, types, tests, and a check
# that the built wheel installs and works.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh" --dev
cd "$here"
py=.venv/bin/python
export QT_QPA_PLATFORM=offscreen

echo "== ruff"
$py -m ruff check .
$py -m ruff format --check .
echo "== mypy"
scripts/typecheck.sh
echo "== wheel"
scripts/check_wheel.sh
echo "== pytest"
$py -m pytest "$@"
