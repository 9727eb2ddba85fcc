"""Spotting: finding expressions in long video, and the MEGC evaluation of a spotter
against the coders (IoU matching, one-to-one or MEGC 2020's gt-found rule)."""

from mmmelab.analysis.spotting.evaluate import (
    RULES,
    Interval,
    SpottingInputError,
    evaluate,
    iou,
    match,
    read_intervals,
)

__all__ = ["RULES", "Interval", "SpottingInputError", "evaluate", "iou", "match", "read_intervals"]
