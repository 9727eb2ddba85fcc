"""What the engine knows of its workers' health: the session's problems and why it failed.

``Supervisor.watch`` runs on the engine's control thread at every ``advance`` (at
least 20 times a second while recording) and once more at the stop. A recorder
that failed becomes a problem; a worker the session cannot go on without (a frame
writer, the signal writer, the trigger bus) ends the session as failed at once,
with the reason in the manifest (``failure``) and a fault row. Nothing fails
silently: a marker listener's exception is a fault and a problem too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mmmelab.acquisition.camera_pipeline import CameraPipeline
from mmmelab.acquisition.recorders import Recorder, RecorderState
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.signals import SignalFile
from mmmelab.streams import FaultKind
from mmmelab.sync.bus import TriggerBus

logger = logging.getLogger(__name__)


class Supervisor:
    """The session's problems (sentences for the manifest and ``mmme check``) and the
    fatal reason, once there is one (``fatal``)."""

    def __init__(
        self, fault: Callable[[str, FaultKind, int, str], None], abort: Callable[[], None]
    ) -> None:
        self._fault = fault  # records a fault row in the session
        self._abort = abort  # ends the paradigm (the run loop and the GUI see it)
        self.problems: list[str] = []
        #: why the session had to be stopped (disk full, a writer died), else None
        self.fatal: str | None = None
        self._listener_errors_seen = 0

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def fail(self, message: str) -> None:
        """Stop the session now as failed; the first reason is the one kept."""
        if self.fatal is not None:
            return
        self.fatal = message
        logger.error("stopping the session: %s", message)
        self.problem(message)
        try:
            self._fault("session", FaultKind.FATAL, 1, message)
        except Exception:  # the signal writer may be what failed
            logger.exception("could not record the fault")
        self._abort()

    def safely(self, what: str, step: Callable[..., Any], *args: Any) -> Any:
        """Run one step of the stop; a failure is logged and becomes a problem (the next
        steps and the manifest must run)."""
        try:
            return step(*args)
        except Exception as exc:  # whatever a step raises, the session is saved
            logger.exception("%s failed", what)
            self.problem(f"{what} failed: {exc!r}")
            return None

    def outcome(
        self, requested: SessionStatus | None, complete: bool, recorder_failed: bool
    ) -> SessionStatus:
        """The session's final status: failed after a fatal fault, or when a recorder
        failed in a session that would otherwise count as complete; else the status
        asked for, by default complete when the paradigm ran to its end."""
        if requested is None:
            requested = SessionStatus.COMPLETE if complete else SessionStatus.ABORTED
        if self.fatal is not None or (recorder_failed and requested is SessionStatus.COMPLETE):
            return SessionStatus.FAILED
        return requested

    def watch(
        self,
        recorders: Mapping[str, Recorder],
        pipeline: CameraPipeline | None,
        signals: SignalFile | None,
        bus: TriggerBus | None,
        out_root: Path,
    ) -> None:
        """Look at every worker once."""
        for name, rec in recorders.items():
            if rec.state is RecorderState.FAILED:
                self.problem(f"{name} stopped during the session: {rec.error}")
        failed, disk_full, why = pipeline.writer_status() if pipeline else (False, False, "")
        if failed and disk_full:
            self.fail(f"disk full: camera frames could not be written to {out_root}")
        elif failed:
            why = why or "its process is gone"
            self.fail(f"the frame writer failed ({why}); camera frames are not saved")
        if signals is not None and (signals.error is not None or not signals.writer_alive):
            self.fail(
                f"the signal writer failed ({signals.error or 'its process is gone'}); "
                f"EEG, physiology and markers are not saved"
            )
        if bus is not None:
            self._watch_bus(bus)

    def _watch_bus(self, bus: TriggerBus) -> None:
        while len(bus.listener_errors) > self._listener_errors_seen:
            detail = bus.listener_errors[self._listener_errors_seen]
            self._listener_errors_seen += 1
            logger.warning("markers: a marker listener failed: %s", detail)
            self._fault(
                "markers", FaultKind.LISTENER_ERROR, 1, f"a marker listener failed: {detail}"
            )
            self.problem(f"a marker listener failed: {detail}")
        if bus.error is not None:
            self.fail(f"{bus.error}; no more event codes can be sent")
