"""The clip simulator: synthetic stand-ins for the licensed stimulus clips.

Protocols whose ``stimuli_dir`` is ``@demo`` play these (MPEG-4 video with an AAC
sound track, via PyAV): a colour field per target emotion with a moving disc, a
1 s progress bar, and a tone whose pitch depends on the emotion. The product makes
them through :func:`mmmelab.acquisition.simulation.make_demo_clips`.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmmelab.protocol import Clip, Emotion, Protocol

logger = logging.getLogger(__name__)

_COLOURS = {
    None: (90, 90, 90),
    Emotion.HAPPINESS: (230, 190, 40),
    Emotion.SURPRISE: (240, 120, 200),
    Emotion.SADNESS: (50, 80, 170),
    Emotion.FEAR: (60, 40, 80),
    Emotion.ANGER: (200, 40, 30),
    Emotion.DISGUST: (110, 140, 40),
    Emotion.CONTEMPT: (150, 110, 90),
}
_TONES = {
    None: 220.0,
    Emotion.HAPPINESS: 523.3,
    Emotion.SURPRISE: 659.3,
    Emotion.SADNESS: 261.6,
    Emotion.FEAR: 311.1,
    Emotion.ANGER: 392.0,
    Emotion.DISGUST: 293.7,
    Emotion.CONTEMPT: 349.2,
}


def ensure_demo_clips(
    protocol: Protocol, folder: Path, width: int = 320, height: int = 180, fps: int = 30
) -> list[Path]:
    """Generate the protocol's clips that are missing from ``folder``; returns the new files."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for clip in protocol.all_clips():
        path = folder / clip.file
        if not path.is_file():
            write_synthetic_clip(path, clip, width, height, fps)
            made.append(path)
    return made


def write_synthetic_clip(
    path: Path,
    clip: Clip,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    audio_rate: int = 44100,
) -> None:
    """Write one synthetic MPEG-4 clip with sound, ``clip.duration_s`` long (atomic rename)."""
    import av

    tmp = path.with_suffix(".partial" + path.suffix)
    n_frames = max(1, round(clip.duration_s * fps))
    colour = np.array(_COLOURS[clip.emotion], np.float32)
    yy, xx = np.mgrid[:height, :width]
    with av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 800_000
        audio = container.add_stream("aac", rate=audio_rate)
        audio.layout = "mono"
        for i in range(n_frames):
            t = i / fps
            shade = 0.75 + 0.25 * float(np.sin(2 * np.pi * t / 4.0))
            img = np.empty((height, width, 3), np.float32)
            img[:] = colour * shade
            cx = width * (0.5 + 0.35 * np.sin(2 * np.pi * t / 3.0))
            disc = (xx - cx) ** 2 + (yy - height / 2) ** 2 < (height / 6) ** 2
            img[disc] = 255.0
            img[height - 8 :, : int(width * (t % 1.0))] = 0.0  # 1 s progress bar
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        n_audio = round(clip.duration_s * audio_rate)
        ta = np.arange(n_audio) / audio_rate
        tone = 0.2 * np.sin(2 * np.pi * _TONES[clip.emotion] * ta) * np.minimum(1.0, ta * 10)
        step = 1024
        for start in range(0, n_audio, step):
            chunk = tone[start : start + step].astype(np.float32)[None, :]
            aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            aframe.sample_rate = audio_rate
            aframe.pts = start
            aframe.time_base = Fraction(1, audio_rate)
            for packet in audio.encode(aframe):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    tmp.replace(path)
    logger.info("generated demo clip %s (%.1f s)", path, clip.duration_s)
