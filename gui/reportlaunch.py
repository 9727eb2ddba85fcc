"""The console's "Quality report" button: ``mmme report SESSION`` in its own process
(the recording's interpreter stays free), then the page opened in the browser."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QObject, QProcess, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices


class ReportLauncher(QObject):
    """Writes a session's report with a child process; ``done(path, error)`` follows."""

    done = pyqtSignal(str, str)  # report path (empty on failure), error line

    def __init__(self, parent: QObject | None = None,
                 open_url: Callable[[QUrl], object] | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._open = open_url or QDesktopServices.openUrl
        self._proc: QProcess | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self, folder: Path) -> None:
        if self._proc is not None:
            return
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-m", "mmmelab", "report", str(folder)])
        proc.finished.connect(lambda code, _status: self._finished(proc, folder, code))
        self._proc = proc
        proc.start()

    def _finished(self, proc: QProcess, folder: Path, code: int) -> None:
        self._proc = None
        if code == 0:
            path = folder / "report.html"
            self._open(QUrl.fromLocalFile(str(path)))
            self.done.emit(str(path), "")
        else:
            err = bytes(proc.readAllStandardError().data()).decode(errors="replace").strip()
            self.done.emit("", err.splitlines()[-1] if err else f"mmme report exited {code}")
        proc.deleteLater()
