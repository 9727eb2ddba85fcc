"""After the stop: the session check and the alignment, each in a process of its own
(``python -m mmmelab align/check``), as an analyst runs them. Called on the control
thread (:mod:`mmmelab.acquisition.control`) while the console shows "checking"."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from mmmelab.acquisition.messages import SessionResult

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 300.0


def check_and_align(result: SessionResult, folder: Path) -> None:
    """Align the saved session (``sync.json``) and check it; the alignment's summary
    lines and the check's report go into ``result`` (an unreadable report: its error)."""
    result.alignment = _run_cli("align", folder).splitlines()
    try:
        result.check = json.loads(_run_cli("check", folder, "--json") or "{}")
    except ValueError as exc:
        result.error = f"the session check gave no readable report ({exc})"


def _run_cli(command: str, folder: Path, *extra: str) -> str:
    """Run ``mmme <command> <folder>`` in its own process; its stdout (problems are logged)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mmmelab", command, str(folder), *extra],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        logger.error("mmme %s did not finish within %.0f s", command, CHECK_TIMEOUT_S)
        return ""
    if done.returncode not in (0, 1):
        logger.error("mmme %s failed: %s", command, done.stderr.strip()[-500:])
    return done.stdout
