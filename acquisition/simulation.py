"""The one place in the product that starts the simulated lab.

Nothing else in the product imports :mod:`mmmelab.hardware_mocks`; drivers never
know whether they talk to a simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.acquisition.paradigm import Paradigm, Rating
from mmmelab.config import LabConfig
from mmmelab.protocol import Emotion, Protocol


def start_simulated_lab(
    lab: LabConfig,
    clock: Callable[[], float],
    seed: int = 0,
    clocks: dict[str, Any] | None = None,
    camera_sensor_limited: bool = True,
) -> Any:
    """Start simulators for every device the lab marks ``simulate = true``.

    ``camera_sensor_limited=False`` (benchmarks only) lets the simulated camera run
    faster than its sensor's readout allows, so that the pipeline's limit is measured.

    Returns a ``SimulatedLab`` (context manager with ``configured(lab)``,
    ``ground_truth()`` and ``close()``). Raises
    :class:`~mmmelab.extras.MissingExtraError` without the ``[sim]`` extra.
    """
    require_sim()
    from mmmelab.hardware_mocks.lab import ClockModel, SimulatedLab

    models = {
        k: v if isinstance(v, ClockModel) else ClockModel(**v) for k, v in (clocks or {}).items()
    }
    return SimulatedLab(
        lab, clock, clocks=models, seed=seed, camera_sensor_limited=camera_sensor_limited
    )


def simulated_participant(paradigm: Paradigm, seed: int = 0, **behaviour: Any) -> Any:
    """A simulated participant (:class:`~mmmelab.hardware_mocks.participant.SimulatedParticipant`)
    wired to ``paradigm``: it sees the phase and the clip just watched, presses Space
    and answers the ratings through the paradigm's own inputs. ``behaviour``: its
    reaction times, ``accuracy`` and ``miss_rate``."""
    from mmmelab.hardware_mocks.participant import SimulatedParticipant

    def screen() -> tuple[str, Emotion | None]:
        trial = paradigm.results[-1] if paradigm.results else None
        return paradigm.phase.value, trial.clip.emotion if trial is not None else None

    def answer(emotion: Emotion, valence: int, arousal: int, now: float) -> None:
        paradigm.rate(Rating(emotion, valence, arousal), now)

    return SimulatedParticipant(screen, paradigm.space, answer, seed=seed, **behaviour)


def make_demo_clips(protocol: Protocol, folder: Path) -> list[Path]:
    """Make the synthetic clips of a ``@demo`` protocol that ``folder`` lacks (the
    clip simulator, :mod:`mmmelab.hardware_mocks.clips`); returns the new files."""
    from mmmelab.hardware_mocks.clips import ensure_demo_clips

    return ensure_demo_clips(protocol, folder)


def require_sim(purpose: str = "the simulated lab") -> None:
    """Say, as one :class:`~mmmelab.errors.LabError`, that the simulators need the
    ``[sim]`` extra when it is not installed (a recording PC has no need of it)."""
    from mmmelab.extras import require

    require("sim", purpose)


def synthetic_physio(
    rate_hz: float,
    seconds: float,
    heart_rate: float,
    seed: int,
    me_onsets: tuple[float, ...],
    skt_base: float = 33.0,
    eda_base: float = 4.0,
    response: tuple[float, float, float] | None = None,
    emotions: tuple[str, ...] | None = None,
    emotion_scale: float = 0.0,
) -> dict[str, Any]:
    """The simulated lab's physiology model, with heart-rate variability (for ``mmme simulate``).

    Returns float32 arrays ECG (mV), PPG, RSP, SKT (degC), EDA (uS), ``rate_hz`` apart,
    whose heart rate rises after each time in ``me_onsets`` (s from the start), by
    ``response`` = (rise bpm, delay s, width s) (default: ``hr_response_model()``).
    """
    require_sim("the simulated physiology")
    from mmmelab.hardware_mocks import synth

    return synth.make_physio(
        rate_hz,
        seconds,
        heart_rate,
        seed,
        me_onsets,
        hrv_seed=seed + 7919,
        skt_base=skt_base,
        eda_base=eda_base,
        eda_drift=0.0,  # stationary: a study's windows are compared at any time
        skt_wander=True,
        response=synth.HrResponse(*response) if response else None,
        emotions=emotions,
        emotion_scale=emotion_scale,
    )


def synthetic_eeg(n_channels: int, rate_hz: float, seconds: float, seed: int) -> Any:
    """(samples, channels) float32 uV of the simulated amplifier's background EEG (read-only)."""
    from mmmelab.hardware_mocks import synth

    return synth.eeg_background(n_channels, rate_hz, seconds, seed)


def emotion_eeg(emotion: str) -> tuple[float, float]:
    """(alpha gain, beta amplitude) the simulated EEG shows around an expression of
    ``emotion`` (per unit of the study plan's ``emotion_scale``)."""
    from mmmelab.hardware_mocks import synth

    return synth.EMOTION_EEG.get(emotion, (0.0, 0.0))


def synthetic_eeg_labels(n_channels: int) -> list[str]:
    """The simulated amplifier's channel labels: the Quik-Cap 64 names, or E1, E2, ...
    for more channels than that."""
    from mmmelab.hardware_mocks import synth

    return synth.eeg_labels(n_channels)


def synthetic_face(
    width: int, height: int, expressions: list[dict[str, Any]], span: tuple[float, float],
    seed: int,
) -> Any:  # fmt: skip
    """The simulated face (a ``FaceRenderer``) making ``expressions`` (master times) with
    blinks, head moves, drift, light change and noise over ``span``."""
    from mmmelab.hardware_mocks.ximea.face import FaceRenderer, FaceScript

    script = FaceScript.random(span[0], span[1], expressions, min(width, height), seed)
    return FaceRenderer(width, height, script)


def hr_response_model(response: tuple[float, float, float] | None = None) -> dict[str, float]:
    """The heart-rate response the simulated physiology puts after a micro-expression."""
    from mmmelab.hardware_mocks import synth

    if response:
        rise, delay, width = response
        return {"rise_bpm": rise, "delay_s": delay, "width_s": width,
                "pulse_transit_s": synth.PULSE_TRANSIT_S}  # fmt: skip
    return {
        "rise_bpm": synth.ME_HR_RISE_BPM,
        "delay_s": synth.ME_HR_DELAY_S,
        "width_s": synth.ME_HR_WIDTH_S,
        "pulse_transit_s": synth.PULSE_TRANSIT_S,
    }
