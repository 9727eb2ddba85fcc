"""EEG preprocessing with MNE, and band-power features per window.

The MMME paper (section 4.2.2) filters into five bands, downsamples, runs ICA and
EEGLAB's ADJUST. ``paper_spec.md`` section 3 recommends the order used here:

1. 1000 -> 200 Hz (polyphase, with its anti-alias filter; master times kept per sample);
2. band-pass 0.5-47 Hz (MNE's zero-phase FIR);
3. bad channels: flat (SD < ``flat_uv``), deviating (robust z of log SD > ``bad_z``)
   or uncorrelated with the rest (median |r| < ``min_corr``), in the spirit of
   PyPREP's ``NoisyChannels``; interpolated (spherical splines) from their neighbours;
4. average reference;
5. ICA fitted the way ICLabel expects (extended Infomax - Picard with
   ``extended=True, ortho=False`` - on average-referenced data high-passed at 1 Hz,
   the low-pass as high as the 200 Hz rate allows); components labelled by
   mne-icalabel (the stand-in for ADJUST; its network ships in the package) and
   those labelled eye, muscle, heart, line noise or channel noise with probability
   >= ``reject_threshold`` removed from the 0.5-47 Hz data; every rejection logged;
6. the five bands delta 0.5-4, theta 4-8, alpha 8-14, beta 14-30, gamma 30-47 Hz
   (:func:`band_raw` for the band-limited signals) and band power per window
   (:func:`band_power`: Welch, 2 s Hann segments, integrated over the band).

Channels without a position in the standard 10-05 montage (a QuickCap's CB1/CB2)
are kept as ``misc`` and said so; HEO/VEO are ``eog``. Analysts get MNE objects
(:attr:`EegResult.raw`, :attr:`EegResult.ica`, :func:`epochs_at`) to carry on in MNE.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

from mmmelab.storage import SignalStream

logger = logging.getLogger(__name__)

BANDS = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 30.0),
    "gamma": (30.0, 47.0),
}
EOG_NAMES = ("HEO", "VEO", "HEOG", "VEOG", "EOG")
ARTEFACT_LABELS = ("eye blink", "muscle artifact", "heart beat", "line noise", "channel noise")


@dataclass(frozen=True)
class EegParams:
    rate_hz: float = 200.0
    band_hz: tuple[float, float] = (0.5, 47.0)
    flat_uv: float = 0.5
    bad_z: float = 5.0
    min_corr: float = 0.4
    max_bad_fraction: float = 0.25  # more bad channels than this: none is interpolated
    ica: bool = True
    ica_components: int = 30
    ica_fit_max_s: float = 300.0  # the ICA is fitted on at most this much data (evenly spread)
    ica_highpass_hz: float = 1.0
    ica_seed: int = 97
    reject_threshold: float = 0.8
    reject_labels: tuple[str, ...] = ARTEFACT_LABELS
    welch_segment_s: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EegResult:
    raw: Any  # mne.io.Raw, cleaned, 0.5-47 Hz, average reference, volts
    t: np.ndarray  # master time of every sample, s
    bad_channels: list[str]
    bad_reasons: dict[str, str]
    ica: Any = None  # mne.preprocessing.ICA, or None
    ic_labels: list[dict[str, Any]] = field(default_factory=list)  # per component
    rejected: list[int] = field(default_factory=list)
    no_position: list[str] = field(default_factory=list)
    params: EegParams = field(default_factory=EegParams)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "channels": len(self.raw.ch_names),
            "rate_hz": float(self.raw.info["sfreq"]),
            "samples": int(self.raw.n_times),
            "bad_channels": self.bad_channels,
            "bad_reasons": self.bad_reasons,
            "no_position": self.no_position,
            "ica_components": len(self.ic_labels),
            "ica_rejected": [self.ic_labels[i] | {"component": i} for i in self.rejected],
            "notes": self.notes,
        }


def _channel_types(names: list[str], montage_names: set[str]) -> tuple[list[str], list[str]]:
    types, missing = [], []
    for n in names:
        if n.upper() in EOG_NAMES:
            types.append("eog")
        elif n.upper() in montage_names:
            types.append("eeg")
        else:
            types.append("misc")
            missing.append(n)
    return types, missing


def standard_montage() -> Any:
    """The 10-05 template montage (MNE renamed it ``colin27_1005`` in 1.13)."""
    import mne

    builtin = mne.channels.get_builtin_montages()
    return mne.channels.make_standard_montage(
        "colin27_1005" if "colin27_1005" in builtin else "standard_1005"
    )


def to_raw(data_uv: np.ndarray, names: list[str], rate_hz: float) -> tuple[Any, list[str]]:
    """An MNE RawArray (volts) with the 10-05 montage; returns it and the channels that
    have no montage position (typed ``misc``)."""
    import mne

    montage = standard_montage()
    upper = {n.upper(): n for n in montage.ch_names}
    types, missing = _channel_types(names, set(upper))
    info = mne.create_info(list(names), rate_hz, types)
    raw = mne.io.RawArray(np.asarray(data_uv, dtype=np.float64).T * 1e-6, info, verbose="error")
    rename = {n: upper[n.upper()] for n, k in zip(names, types, strict=True) if k == "eeg"}
    positions = montage.get_positions()["ch_pos"]
    ch_pos = {n: positions[rename[n]] for n in rename}
    raw.set_montage(
        mne.channels.make_dig_montage(
            ch_pos=ch_pos, coord_frame="head", **_fiducials(positions, montage)
        ),
        on_missing="ignore",
        verbose="error",
    )
    return raw, missing


def _fiducials(positions: dict[str, Any], montage: Any) -> dict[str, Any]:
    fid = montage.get_positions()
    return {k: fid[k] for k in ("nasion", "lpa", "rpa") if fid.get(k) is not None}


def read_stream(stream: SignalStream, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The stream resampled to ``rate_hz`` (float32 uV, samples x channels) and its master times."""
    from fractions import Fraction

    data = stream.data[()]
    t_in = stream.master_time
    ratio = Fraction(rate_hz / stream.rate_hz).limit_denominator(1000)
    if ratio == 1:
        return np.asarray(data, np.float32), np.asarray(t_in)
    up, down = ratio.numerator, ratio.denominator
    n_out = -(-len(data) * up // down)
    out = np.empty((data.shape[1], n_out), np.float32)  # channel rows: contiguous writes

    def one(c: int) -> None:
        out[c] = sps.resample_poly(data[:, c].astype(np.float64), up, down)[:n_out]

    # channel by channel on every core: scipy's filtering lets the GIL go, and each
    # channel is filtered alone, so the numbers are those of a plain loop
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, data.shape[1])) as pool:
        list(pool.map(one, range(data.shape[1])))
    t = np.interp(np.arange(n_out) * down / up, np.arange(len(t_in)), t_in)
    return np.ascontiguousarray(out.T), t


def find_bad_channels(x: np.ndarray, names: list[str], params: EegParams) -> dict[str, str]:
    """Flat, deviating and uncorrelated channels of ``x`` (samples x channels, uV)."""
    sd = x.std(axis=0)
    bad: dict[str, str] = {}
    for i in np.flatnonzero(sd < params.flat_uv):
        bad[names[i]] = f"flat (SD {sd[i]:.2f} uV < {params.flat_uv:g})"
    live = sd >= params.flat_uv
    if live.sum() < 3:
        return bad
    log_sd = np.log(sd[live])
    med = np.median(log_sd)
    mad = 1.4826 * np.median(np.abs(log_sd - med)) or 1e-12
    z = (log_sd - med) / mad
    idx = np.flatnonzero(live)
    for k, i in enumerate(idx):
        if abs(z[k]) > params.bad_z:
            bad.setdefault(names[i], f"deviation (robust z of log SD {z[k]:+.1f})")
    step = max(1, len(x) // 20000)
    corr = np.abs(np.corrcoef(x[::step, idx].T))
    np.fill_diagonal(corr, 0.0)
    best = min(3, len(idx) - 1)
    near_r = np.sort(corr, axis=1)[:, -best:].mean(axis=1)  # its best-correlated neighbours
    for k, i in enumerate(idx):
        if near_r[k] < params.min_corr:
            bad.setdefault(
                names[i],
                f"uncorrelated (|r| with its {best} closest-matching channels "
                f"{near_r[k]:.2f} < {params.min_corr:g})",
            )
    return bad


def preprocess(
    data_uv: np.ndarray,
    t: np.ndarray,
    names: list[str],
    rate_hz: float,
    params: EegParams | None = None,
    progress: Callable[[str], None] | None = None,
    clean: bool = True,
) -> EegResult:
    """Steps 2-5 of the module docstring on data already at ``params.rate_hz``.
    ``clean=False`` stops once the bad channels are known (for a summary such as the
    quality report): nothing interpolated, the recording reference, no ICA."""
    import mne

    params = params or EegParams()
    say = progress or (lambda _m: None)
    mne.set_log_level("ERROR")
    raw, missing = to_raw(data_uv, names, rate_hz)
    say("band-pass")
    raw.filter(*params.band_hz, picks=["eeg", "eog"], n_jobs=1)
    eeg_picks = [names[i] for i in mne.pick_types(raw.info, eeg=True)]
    eeg_idx = [names.index(n) for n in eeg_picks]
    bad = find_bad_channels(raw.get_data(picks=eeg_picks).T * 1e6, eeg_picks, params)
    del eeg_idx
    result = EegResult(raw, t, sorted(bad), bad, no_position=missing, params=params)
    if len(bad) > params.max_bad_fraction * len(eeg_picks):
        result.notes.append(
            f"{len(bad)} of {len(eeg_picks)} channels look bad - too many to interpolate; "
            f"none was interpolated (check the recording): {', '.join(sorted(bad))}"
        )
        bad = {}
        result.bad_channels = []
    if missing:
        result.notes.append(
            f"no position in the 10-05 montage, kept as misc (not interpolated, not in the ICA): "
            f"{', '.join(missing)}"
        )
    if not clean:
        return result
    if bad:
        raw.info["bads"] = sorted(bad)
        say("interpolate bad channels")
        raw.interpolate_bads(reset_bads=True)
    raw.set_eeg_reference("average", projection=False)
    if params.ica:
        _ica(result, raw, data_uv, names, rate_hz, params, say)
    return result


def _ica(
    result: EegResult,
    raw: Any,
    data_uv: np.ndarray,
    names: list[str],
    rate_hz: float,
    params: EegParams,
    say: Callable[[str], None],
) -> None:
    import mne
    from mne_icalabel import label_components

    say("ICA")
    fit_raw, _ = to_raw(data_uv, names, rate_hz)
    fit_raw.filter(params.ica_highpass_hz, None, picks=["eeg", "eog"], n_jobs=1)
    if result.bad_channels:
        fit_raw.info["bads"] = list(result.bad_channels)
        fit_raw.interpolate_bads(reset_bads=True)
    fit_raw.set_eeg_reference("average", projection=False)
    n_eeg = len(mne.pick_types(fit_raw.info, eeg=True))
    n_comp = int(min(params.ica_components, n_eeg - 1 - len(result.bad_channels)))
    if n_comp < 2:
        result.notes.append(f"ICA skipped: only {n_eeg} EEG channels")
        return
    decim = max(1, int(np.ceil(fit_raw.n_times / (params.ica_fit_max_s * rate_hz))))
    ica = mne.preprocessing.ICA(
        n_components=n_comp,
        method="picard",
        fit_params={"extended": True, "ortho": False},
        random_state=params.ica_seed,
        max_iter=500,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ica.fit(fit_raw, picks="eeg", decim=decim)
        say("ICLabel")
        labels = label_components(fit_raw, ica, method="iclabel")
    probs = np.asarray(labels["y_pred_proba"], dtype=float)
    result.ica = ica
    result.ic_labels = [
        {"label": str(lab), "probability": float(p)}
        for lab, p in zip(labels["labels"], probs, strict=True)
    ]
    result.rejected = [
        i for i, lab in enumerate(result.ic_labels)
        if lab["label"] in params.reject_labels and lab["probability"] >= params.reject_threshold
    ]  # fmt: skip
    for i in result.rejected:
        lab = result.ic_labels[i]
        logger.info("ICA component %d rejected: %s (p=%.2f)", i, lab["label"], lab["probability"])
    ica.exclude = list(result.rejected)
    if result.rejected:
        ica.apply(raw)
    result.notes.append(
        f"ICA: {n_comp} components (extended Infomax via Picard, fitted on every {decim}. sample "
        f"of a 1 Hz high-passed copy); rejected {len(result.rejected)}: "
        + ", ".join(f"IC{i} {result.ic_labels[i]['label']}" for i in result.rejected)
    )


def from_stream(
    stream: SignalStream,
    params: EegParams | None = None,
    progress: Callable[[str], None] | None = None,
    clean: bool = True,
) -> EegResult:
    """Preprocess a session's EEG stream (see the module docstring; ``clean``: see
    :func:`preprocess`)."""
    params = params or EegParams()
    say = progress or (lambda _m: None)
    say("resample")
    data, t = read_stream(stream, params.rate_hz)
    return preprocess(data, t, list(stream.channels), params.rate_hz, params, say, clean)


def band_raw(result: EegResult, band: str) -> Any:
    """The cleaned EEG limited to one of :data:`BANDS` (a new MNE Raw)."""
    lo, hi = BANDS[band]
    return result.raw.copy().filter(lo, hi, picks=["eeg"], n_jobs=1, verbose="error")


def band_power(
    x_uv: np.ndarray,
    rate_hz: float,
    segment_s: float = 2.0,
    bands: dict[str, tuple[float, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Absolute band power (uV^2) per channel of ``x_uv`` (samples x channels): Welch with
    Hann segments of ``segment_s`` (50 % overlap), integrated over each band (trapezoid)."""
    bands = bands or BANDS
    nper = min(len(x_uv), int(segment_s * rate_hz))
    f, p = sps.welch(x_uv, fs=rate_hz, nperseg=nper, axis=0)
    out = {}
    for name, (lo, hi) in bands.items():
        m = (f >= lo) & (f <= hi)
        out[name] = np.trapezoid(p[m], f[m], axis=0)
    return out


def window_band_features(result: EegResult, t0: float, t1: float) -> dict[str, float]:
    """Band power (mean over EEG channels, and its log10) in master times [t0, t1)."""
    import mne

    a, b = int(np.searchsorted(result.t, t0)), int(np.searchsorted(result.t, t1))
    picks = mne.pick_types(result.raw.info, eeg=True)
    rate = float(result.raw.info["sfreq"])
    out: dict[str, float] = {}
    if b - a < int(result.params.welch_segment_s * rate) or a < 0 or b > result.raw.n_times:
        return {f"EEG_{n}_power": float("nan") for n in BANDS}
    x = result.raw.get_data(picks=picks, start=a, stop=b).T * 1e6
    for name, power in band_power(x, rate, result.params.welch_segment_s).items():
        out[f"EEG_{name}_power"] = float(np.mean(power))
        positive = power[power > 0]
        out[f"EEG_{name}_log10"] = float(np.mean(np.log10(positive))) if len(positive) else np.nan
    return out


def epochs_at(result: EegResult, times: np.ndarray, tmin: float, tmax: float) -> Any:
    """MNE Epochs around master times (e.g. ME apexes), baseline off, on the cleaned data."""
    import mne

    samples = np.searchsorted(result.t, np.asarray(times, float))
    ok = (samples > 0) & (samples < result.raw.n_times)
    events = np.column_stack([samples[ok], np.zeros(ok.sum(), int), np.ones(ok.sum(), int)])
    return mne.Epochs(
        result.raw, events, {"apex": 1}, tmin, tmax, baseline=None, preload=True, verbose="error"
    )
