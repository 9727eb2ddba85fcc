"""The checks before anything is recorded, and the set-up record they leave.

At Connect: the stimulus clips are all there, every volume can hold the planned
session at the recording's rate (``diskcheck``). At Start: the participant id and
session number are valid. The set-up record (the rig checks, the camera settings
the recording starts with and each change made in preview, the amplifier's
impedance-mode events, the display check) goes into the manifest as ``setup``.
All of it runs on the engine's control thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmmelab.acquisition.diskcheck import DiskCheck, check_volumes
from mmmelab.acquisition.simulation import make_demo_clips
from mmmelab.acquisition.stimuli import missing_clips, stimuli_folder
from mmmelab.config import LabConfig
from mmmelab.errors import LabError
from mmmelab.protocol import DEMO_STIMULI, Protocol
from mmmelab.storage.frames import FrameGeometry

SIGNALS_BYTES_PER_S = 64 * 1000 * 6 + 13 * 1000 * 5  # EEG + physio on disk, generous


def prepare_stimuli(protocol: Protocol, lab: LabConfig) -> Path:
    """The folder of the protocol's clips (the demo clips are made there when missing);
    LabError naming the missing clips otherwise."""
    folder = stimuli_folder(protocol, lab)
    if protocol.stimuli_dir == DEMO_STIMULI:
        make_demo_clips(protocol, folder)
    missing = missing_clips(protocol, folder)
    if missing:
        shown = ", ".join(str(m) for m in missing[:3])
        raise LabError(
            f"{len(missing)} stimulus clip(s) of protocol {protocol.name!r} are missing, "
            f"e.g. {shown}; put the licensed clips there or point stimuli_dir/stimuli_root "
            f"at them"
        )
    return folder


def check_disks(volumes: list[Path], lab: LabConfig, protocol: Protocol) -> DiskCheck:
    """Whether ``volumes`` hold the planned session at the camera's full rate (the
    frames striped over them, the signals on the first): refused in one line
    (LabError) when they cannot, a warning when it is tight."""
    cam = lab.camera
    return check_volumes(
        volumes,
        FrameGeometry(cam.width, cam.height).stride * cam.fps,
        SIGNALS_BYTES_PER_S,
        protocol.planned_duration_s(),
    )


@dataclass
class SetupRecord:
    """What happened between Connect and Start, for the manifest's ``setup``."""

    #: the rig checks (``rigcheck``) and any override, as the console or CLI left them
    checks: dict[str, Any] = field(default_factory=dict)
    camera_changes: list[dict[str, Any]] = field(default_factory=list)  # made in preview
    events: list[dict[str, Any]] = field(default_factory=list)  # e.g. impedance mode
    display: dict[str, Any] = field(default_factory=dict)  # the GUI's clip and display check

    def for_manifest(self, camera_final: dict[str, Any]) -> dict[str, Any]:
        """The record with the camera settings the recording started with and every
        change made in preview (also those after the checks ran)."""
        record = dict(self.checks) if self.checks else {"checks_run": False}
        return record | {
            "camera_final": camera_final,
            "camera_changes": list(self.camera_changes),
            "events": list(self.events),
            "display": self.display or {"run": False},
        }
