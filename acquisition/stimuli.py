"""Stimulus clips: where they are, whether they are all there, how long they run.

The real MMME clips are not redistributable. Protocols whose ``stimuli_dir`` is
``@demo`` use synthetic clips, made on first use by the clip simulator
(:mod:`mmmelab.hardware_mocks.clips`, through :mod:`mmmelab.acquisition.simulation`)
into :func:`demo_stimuli_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmmelab.config import LabConfig
from mmmelab.protocol import Protocol


def demo_stimuli_dir() -> Path:
    """Per-user cache folder of the generated demo clips."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmme-lab" / "demo-stimuli"


def stimuli_folder(protocol: Protocol, lab: LabConfig) -> Path:
    """Where the protocol's clips are: under the lab's ``stimuli_root``, or the demo clips'
    cache."""
    return protocol.stimuli_path(lab.stimuli_root, demo_stimuli_dir())


def missing_clips(protocol: Protocol, folder: Path) -> list[Path]:
    """The protocol's clip files that are not in ``folder``."""
    return [folder / c.file for c in protocol.all_clips() if not (folder / c.file).is_file()]


def probe_duration_s(path: Path) -> float:
    """Length of a clip according to its container, seconds."""
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return float(container.duration) / 1e6
        stream = container.streams.video[0]
        if stream.duration is None or stream.time_base is None:
            return 0.0
        return float(stream.duration * stream.time_base)
