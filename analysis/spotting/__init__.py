"""Spotting: finding expressions in long video, the heart-rate filter for its
candidates (MMME eq. 12, ``ccf``), and the MEGC evaluation of a spotter against the
coders (IoU matching, one-to-one or MEGC 2020's gt-found rule, ``evaluate``)."""

from mmmelab.analysis.spotting.ccf import Candidate, Decision, ccf_filter, hr_slope
from mmmelab.analysis.spotting.evaluate import (
    RULES,
    Interval,
    SpottingInputError,
    evaluate,
    iou,
    match,
    read_intervals,
)

__all__ = [
    "RULES",
    "Candidate",
    "Decision",
    "Interval",
    "SpottingInputError",
    "ccf_filter",
    "evaluate",
    "hr_slope",
    "iou",
    "match",
    "read_intervals",
]
