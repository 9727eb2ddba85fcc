"""Peripheral physiology: preprocessing with NeuroKit2 and the MMME paper's features."""

from mmmelab.analysis.physio.features import (
    CHOICES,
    TABLE3,
    TABLE6,
    FeatureParams,
    table3_features,
    table6_features,
)
from mmmelab.analysis.physio.preprocess import PhysioData, PhysioParams, from_arrays, from_stream

__all__ = [
    "CHOICES",
    "TABLE3",
    "TABLE6",
    "FeatureParams",
    "PhysioData",
    "PhysioParams",
    "from_arrays",
    "from_stream",
    "table3_features",
    "table6_features",
]
