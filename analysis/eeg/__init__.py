"""EEG: MNE preprocessing (filter, bad channels, average reference, ICA + ICLabel) and
band-power features."""

from mmmelab.analysis.eeg.preprocess import (
    BANDS,
    EegParams,
    EegResult,
    band_power,
    band_raw,
    epochs_at,
    from_stream,
    preprocess,
    window_band_features,
)

__all__ = [
    "BANDS",
    "EegParams",
    "EegResult",
    "band_power",
    "band_raw",
    "epochs_at",
    "from_stream",
    "preprocess",
    "window_band_features",
]
