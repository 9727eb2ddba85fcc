"""The face in the video: the local face detector, one box per trial, crops and the
green-screen mask (``detect``); optical flow and optical strain (``motion``)."""

from mmmelab.analysis.face.detect import Box, NoFaceError, crop, detect_face, green_mask, trial_box
from mmmelab.analysis.face.motion import (
    METHODS,
    STRAIN_FORMS,
    flow_stack,
    magnitude,
    optical_flow,
    optical_strain,
    strain_provenance,
)

__all__ = [
    "METHODS",
    "STRAIN_FORMS",
    "Box",
    "NoFaceError",
    "crop",
    "detect_face",
    "flow_stack",
    "green_mask",
    "magnitude",
    "optical_flow",
    "optical_strain",
    "strain_provenance",
    "trial_box",
]
