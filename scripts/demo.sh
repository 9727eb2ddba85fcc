#!/usr/bin/env bash
# Set up (if needed) and run the demo: the 2-trial protocol on the simulated lab.
# Extra arguments go to `mmme demo` (e.g. --out DIR, --headless).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh" --analysis  # the simulated lab, and the QC report's analyses
cd "$here"
exec .venv/bin/mmme demo "$@"
