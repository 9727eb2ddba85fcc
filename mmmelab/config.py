"""The lab configuration: devices and their connections, loaded from TOML (:func:`load_lab`).

Devices (``simulate`` per device), screens, the reminder, the data root and the
frame volumes. The loader returns frozen dataclasses; every bad value raises
:class:`~mmmelab.errors.ConfigError` naming the file, the dotted key and what is
allowed. Nothing is read at import time; ``to_dict`` is the snapshot each session
keeps. The protocol is :mod:`mmmelab.protocol`, participant ids
:mod:`mmmelab.participant`; :func:`shipped` finds the files that come with the package.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmmelab.errors import ConfigError
from mmmelab.participant import DEFAULT_PARTICIPANT_PATTERN
from mmmelab.tomlcheck import Table, jsonable, load_toml, read_settings, resolve_dir, setting


class TriggerBoxKind(enum.StrEnum):
    """The trigger boxes the driver speaks to."""

    BRAINPRODUCTS = "brainproducts"
    MMBTS = "mmbts"
    BBTK = "bbtk"
    ARDUINO = "arduino"


class EegProtocol(enum.StrEnum):
    """The EEG server's framing: Curry NetStreaming or Acquire."""

    CURRY = "curry"
    ACQUIRE = "acquire"


@dataclass(frozen=True)
class CameraConfig:
    """The XIMEA camera: which one, the region (px), fps, exposure (us), gain (dB), trigger
    output and white balance."""

    simulate: bool = True
    serial: str = ""
    index: int = setting(0, lo=0)
    width: int = setting(2040, lo=16, hi=8192)
    height: int = setting(1080, lo=16, hi=8192)
    offset_x: int = setting(0, lo=0)
    offset_y: int = setting(0, lo=0)
    fps: float = setting(150.0, lo=1.0, hi=10000.0)
    exposure_us: float = setting(5000.0, lo=1.0, hi=10_000_000.0)
    gain_db: float = setting(0.0, lo=-10.0, hi=48.0)
    queue_frames: int = setting(300, lo=4, hi=10_000)
    gpo_strobe: bool = True
    timestamp_reset_on_trigger: bool = False
    timeout_ms: int = setting(200, lo=10, hi=10_000)
    # TTL edge to the GPI level the camera reports
    trigger_latency_ms: float = setting(0.0, lo=0.0, hi=100.0)
    # White balance gains (xiAPI's wb_kr/kg/kb). RAW8 frames are stored as the sensor
    # gave them; the gains are recorded with the frames and applied when they are shown.
    wb_kr: float = setting(1.0, lo=0.0, hi=8.0)
    wb_kg: float = setting(1.0, lo=0.0, hi=8.0)
    wb_kb: float = setting(1.0, lo=0.0, hi=8.0)

    @property
    def white_balance(self) -> tuple[float, float, float]:
        return (self.wb_kr, self.wb_kg, self.wb_kb)

    def settings(self) -> dict[str, Any]:
        """The image settings a session records (set-up record, manifest, changes)."""
        return {"exposure_us": self.exposure_us, "gain_db": self.gain_db,
                "white_balance": list(self.white_balance), "fps": self.fps}  # fmt: skip


@dataclass(frozen=True)
class EegConfig:
    """The EEG server (Curry or Acquire) on the EEG PC: address, channels, rate (Hz)."""

    simulate: bool = True
    protocol: EegProtocol = EegProtocol.CURRY
    host: str = "127.0.0.1"
    port: int = setting(4455, lo=1, hi=65535)
    channels: int = setting(64, lo=1, hi=299)
    rate_hz: float = setting(1000.0, lo=1.0, hi=100_000.0)
    timeout_s: float = setting(3.0, lo=0.1, hi=60.0)
    # TTL edge to the sample that shows it
    trigger_latency_ms: float = setting(0.5, lo=0.0, hi=100.0)


@dataclass(frozen=True)
class PhysioConfig:
    """AcqKnowledge's Network Data Transfer on the physiology PC: ports, channels, rate
    (Hz)."""

    simulate: bool = True
    host: str = "127.0.0.1"
    control_port: int = setting(15010, lo=1, hi=65535)
    data_port: int = setting(15020, lo=0, hi=65535)
    rate_hz: float = setting(1000.0, lo=1.0, hi=100_000.0)
    channels: tuple[str, ...] = setting(("ECG", "PPG", "RSP", "SKT", "EDA"))
    digital_channels: int = setting(8, lo=0, hi=16)
    timeout_s: float = setting(3.0, lo=0.1, hi=60.0)
    data_type: str = setting("double", choices=("double", "float"))  # NDT's sample type
    discover: bool = False  # find AcqKnowledge by UDP instead of host/port
    discovery_address: str = "255.255.255.255"
    discovery_port: int = setting(15012, lo=1, hi=65535)
    # TTL edge to the sample that shows it
    trigger_latency_ms: float = setting(0.5, lo=0.0, hi=100.0)


@dataclass(frozen=True)
class TriggerBoxConfig:
    """The serial trigger box: which kind, its port, pulse and gap lengths (ms)."""

    simulate: bool = True
    box: TriggerBoxKind = TriggerBoxKind.BRAINPRODUCTS
    port: str = "/dev/ttyUSB0"
    baudrate: int = setting(115200, lo=300, hi=4_000_000)
    pulse_ms: float = setting(20.0, lo=1.0, hi=1000.0)
    gap_ms: float = setting(20.0, lo=0.0, hi=1000.0)
    # host write to the lines changing (USB serial)
    latency_ms: float = setting(1.0, lo=0.0, hi=100.0)


@dataclass(frozen=True)
class LslStreamConfig:
    """One existing LSL stream to record: found by ``source_id`` if given, else by name."""

    name: str
    label: str
    type: str = ""
    source_id: str = ""


class Corner(enum.StrEnum):
    """Where the photodiode patch sits on the stimulus screen."""

    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


@dataclass(frozen=True)
class ScreensConfig:
    """Which screen (Qt's screen index) shows which window.

    When a configured screen does not exist (a laptop, tests), the three windows
    open side by side on the first screen and the console says so.
    """

    console: int = setting(0, lo=0, hi=16)
    stimulus: int = setting(1, lo=0, hi=16)
    reminder: int = setting(2, lo=0, hi=16)
    photodiode: bool = False  # a patch that flips black/white at every stimulus onset
    photodiode_corner: Corner = Corner.BOTTOM_LEFT
    photodiode_size_px: int = setting(60, lo=10, hi=400)
    # no console this long: the recording stops (saved)
    console_lost_stop_s: float = setting(120.0, lo=5, hi=86400)


@dataclass(frozen=True)
class ReminderConfig:
    """The CMRR reminder: what the auxiliary display shows, and the console key for it."""

    text: str = "Please keep a neutral face"
    symbol: str = "\u26a0"  # WARNING SIGN
    # 0 = until the experimenter presses the key again
    hide_after_s: float = setting(3.0, lo=0.0, hi=600.0)
    key: str = "F1"  # a Qt key name: F1-F12, a letter or a digit


@dataclass(frozen=True)
class LabConfig:
    """The whole lab: devices, screens, where data goes. See ``mmmelab/data/labs``."""

    name: str
    data_root: Path
    stimuli_root: Path
    camera: CameraConfig
    eeg: EegConfig
    physio: PhysioConfig
    triggerbox: TriggerBoxConfig
    screens: ScreensConfig = field(default_factory=ScreensConfig)
    reminder: ReminderConfig = field(default_factory=ReminderConfig)
    sync_interval_s: float = 5.0
    participant_pattern: str = DEFAULT_PARTICIPANT_PATTERN
    line_hz: float = 50.0  # mains frequency: 50 (Europe, Asia) or 60 Hz (Americas)
    marker_stream: str = "mmme-markers"
    lsl_streams: tuple[LslStreamConfig, ...] = ()
    source_file: str = ""
    #: ``[storage] volumes``: the folders camera frames are striped over, each on its own
    #: drive; the first is ``data_root`` (sessions live there). Empty: data_root alone.
    volumes: tuple[Path, ...] = ()
    #: ``[storage] frames_per_chunk``: frames per chunk file, the stripe's unit
    frames_per_chunk: int = 900

    def simulated_devices(self) -> list[str]:
        """Names of the devices this configuration runs on simulators."""
        flags = {
            "camera": self.camera.simulate,
            "eeg": self.eeg.simulate,
            "physio": self.physio.simulate,
            "triggerbox": self.triggerbox.simulate,
        }
        return [name for name, simulated in flags.items() if simulated]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def _camera(t: Table) -> CameraConfig:
    cfg = read_settings(CameraConfig, t)
    period_us = 1e6 / cfg.fps
    if cfg.exposure_us >= period_us:
        raise t.error(
            "exposure_us",
            f"is {cfg.exposure_us:g} us; at fps = {cfg.fps:g} the "
            f"exposure must be shorter than the frame period "
            f"({period_us:.0f} us)",
        )
    return cfg


def _physio(t: Table) -> PhysioConfig:
    cfg = read_settings(PhysioConfig, t)
    if not cfg.channels:
        raise t.error("channels", "must name at least one analog channel")
    if len(set(cfg.channels)) != len(cfg.channels):
        raise t.error("channels", f"has duplicate names: {list(cfg.channels)}")
    return cfg


REMINDER_KEY = re.compile(r"F([1-9]|1[0-2])|[A-Z0-9]")


def _reminder(t: Table) -> ReminderConfig:
    cfg = read_settings(ReminderConfig, t)
    if not REMINDER_KEY.fullmatch(cfg.key):
        raise t.error("key", f"is {cfg.key!r}; use F1-F12, one capital letter or one digit")
    if not (cfg.text or cfg.symbol):
        raise t.error("text", "and symbol are both empty; the reminder would show nothing")
    return cfg


def _lsl_stream(t: Table) -> LslStreamConfig:
    name = t.text("name")
    label = t.text("label", "lsl_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower())
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", label):
        raise t.error(
            "label",
            f"is {label!r}; use 1-32 lower-case letters, digits or '_', starting with a letter",
        )
    if label in ("camera", "eeg", "physio", "markers", "faults", "trials", "telemetry"):
        raise t.error("label", f"{label!r} is taken by a built-in stream")
    cfg = LslStreamConfig(
        name=name, label=label, type=t.text("type", ""), source_id=t.text("source_id", "")
    )
    t.done()
    return cfg


def load_lab(path: Path | str) -> LabConfig:
    """Load and validate a lab configuration file.

    Relative ``data_root`` and ``stimuli_root`` are taken relative to the file's folder.
    """
    path = Path(path)
    top = Table(path, load_toml(path))
    lab = top.table("lab", required=True)
    name = lab.text("name")
    has_root = lab.has("data_root")
    data_root = resolve_dir(path.parent, lab.text("data_root", "sessions"))
    stimuli_root = resolve_dir(path.parent, lab.text("stimuli_root", "stimuli"))
    pattern = lab.text("participant_pattern", DEFAULT_PARTICIPANT_PATTERN)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise lab.error("participant_pattern", f"is not a regular expression ({exc})") from None
    line_hz = lab.number("line_hz", 50.0, lo=50.0, hi=60.0)
    if line_hz not in (50.0, 60.0):
        raise lab.error("line_hz", f"is {line_hz:g}; the mains frequency is 50 or 60 Hz")
    lab.done()
    devices = top.table("devices", required=True)
    camera = _camera(devices.table("camera", required=True))
    eeg = read_settings(EegConfig, devices.table("eeg", required=True))
    physio = _physio(devices.table("physio", required=True))
    triggerbox = read_settings(TriggerBoxConfig, devices.table("triggerbox", required=True))
    devices.done()
    screens = read_settings(ScreensConfig, top.table("screens"))
    reminder = _reminder(top.table("reminder"))
    sync = top.table("sync")
    sync_interval_s = sync.number("pulse_interval_s", 5.0, lo=0.5, hi=600.0)
    sync.done()
    lsl = top.table("lsl")
    marker_stream = lsl.text("marker_stream", "mmme-markers")
    lsl_streams = tuple(_lsl_stream(t) for t in lsl.tables("streams"))
    lsl.done()
    storage = top.table("storage")
    frames_per_chunk = storage.integer("frames_per_chunk", 900, lo=16, hi=100_000)
    volumes = _volumes(storage, path.parent, data_root if has_root else None)
    if volumes:
        data_root = volumes[0]
    labels = [s.label for s in lsl_streams]
    if len(set(labels)) != len(labels):
        raise ConfigError(str(path), "lsl.streams", f"labels must be unique; got {labels}")
    top.done()
    min_pulse = 2 * 1000.0 / camera.fps
    if triggerbox.pulse_ms < min_pulse:
        raise ConfigError(
            str(path),
            "devices.triggerbox.pulse_ms",
            f"is {triggerbox.pulse_ms:g} ms; the camera samples its input once "
            f"per frame, so at {camera.fps:g} fps a pulse must last at least two "
            f"frame periods ({min_pulse:.1f} ms)",
        )
    return LabConfig(
        name=name,
        data_root=data_root,
        stimuli_root=stimuli_root,
        camera=camera,
        eeg=eeg,
        physio=physio,
        triggerbox=triggerbox,
        screens=screens,
        reminder=reminder,
        sync_interval_s=sync_interval_s,
        participant_pattern=pattern,
        line_hz=line_hz,
        marker_stream=marker_stream,
        lsl_streams=lsl_streams,
        source_file=str(path),
        volumes=volumes,
        frames_per_chunk=frames_per_chunk,
    )


#: at most this many frame volumes (one ring consumer each, and one for the preview)
MAX_VOLUMES = 7


def _volumes(t: Table, base: Path, data_root: Path | None) -> tuple[Path, ...]:
    """``[storage] volumes``: one or more folders; the first holds the sessions."""
    if not t.has("volumes"):
        t.done()
        return ()
    names = t.str_list("volumes")
    t.done()
    if not 1 <= len(names) <= MAX_VOLUMES:
        raise t.error("volumes", f"lists {len(names)} folders; give 1 to {MAX_VOLUMES}")
    volumes = tuple(resolve_dir(base, n) for n in names)
    if len({v.resolve() for v in volumes}) != len(volumes):
        raise t.error("volumes", "lists a folder twice; each volume is its own drive")
    if data_root is not None and volumes[0].resolve() != data_root.resolve():
        raise t.error(
            "volumes",
            f"starts with {volumes[0]} but lab.data_root is {data_root}: the sessions live on "
            "the first volume; make them the same or leave data_root out",
        )
    return volumes


def shipped(kind: str, name: str) -> Path:
    """Path of a lab or protocol file shipped with the package (``kind``: labs|protocols)."""
    ref = resources.files("mmmelab") / "data" / kind / f"{name}.toml"
    return Path(str(ref))
