"""Optical flow and optical strain on face crops (OpenCV).

Flow ``(u, v)`` is in pixels from a reference frame to a frame: a point at
``(x, y)`` in the reference is at ``(x + u, y + v)`` in the frame; ``u`` runs along
the columns (x), ``v`` along the rows (y).

Optical strain is the magnitude of the flow's strain tensor. The standard form
(the optical-strain literature, e.g. Shreve et al.; the default here)::

    strain = sqrt(u_x^2 + v_y^2 + 0.5 * (u_y + v_x)^2)

MMME's eq. 5 prints a different expression, with derivatives of the squared
components: ``sqrt(d(u^2)/dx + d(v^2)/dy + 0.5 * (d(u^2)/dy + d(v^2)/dx))``
(``form="mmme-printed"``). Its radicand can be negative; those pixels are 0 and
their share is returned with the result's provenance by :func:`strain_provenance`.
Derivatives are central differences (``numpy.gradient``), one-sided at the edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmmelab.analysis.face.cv import opencv

METHODS = ("farneback", "dis", "tvl1")
STRAIN_FORMS = ("standard", "mmme-printed")


def _grey_u8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3:
        a = a.mean(axis=2)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def optical_flow(ref: np.ndarray, img: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Dense flow from ``ref`` to ``img`` (grey or colour, same size): an (H, W, 2)
    float32 array of ``(u, v)``. ``farneback`` (OpenCV's defaults for faces: 3 levels,
    window 15), ``dis`` (DIS, medium preset) or ``tvl1`` (Dual TV-L1, OpenCV contrib)."""
    cv2 = opencv()
    a, b = _grey_u8(ref), _grey_u8(img)
    if a.shape != b.shape:
        raise ValueError(f"frames of different size: {a.shape} and {b.shape}")
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    elif method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    elif method == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise ValueError("TV-L1 needs OpenCV's contrib build (opencv-contrib-python)")
        flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)
    else:
        raise ValueError(f"flow method {method!r}: one of {', '.join(METHODS)}")
    return np.asarray(flow, dtype=np.float32)


def optical_strain(flow: np.ndarray, form: str = "standard") -> np.ndarray:
    """Strain magnitude per pixel of an (H, W, 2) flow field (see the module doc)."""
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    if form == "standard":
        u_y, u_x = np.gradient(u)
        v_y, v_x = np.gradient(v)
        return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)
    if form == "mmme-printed":
        return np.sqrt(np.maximum(_printed_radicand(u, v), 0.0)).astype(np.float32)
    raise ValueError(f"strain form {form!r}: one of {', '.join(STRAIN_FORMS)}")


def _printed_radicand(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    uu_y, uu_x = np.gradient(u * u)
    vv_y, vv_x = np.gradient(v * v)
    return uu_x + vv_y + 0.5 * (uu_y + vv_x)


def strain_provenance(flow: np.ndarray, form: str) -> dict[str, Any]:
    """What to record with a strain map: the form and, for the printed form, the share
    of pixels whose radicand was negative (set to 0)."""
    out: dict[str, Any] = {"strain_form": form}
    if form == "mmme-printed":
        r = _printed_radicand(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64))
        out["negative_radicand_share"] = float(np.mean(r < 0))
    return out


def flow_stack(
    ref: np.ndarray, img: np.ndarray, method: str = "farneback", form: str = "standard"
) -> np.ndarray:
    """The (H, W, 3) float32 stack ``(u, v, strain)`` recognisers take (onset -> apex)."""
    flow = optical_flow(ref, img, method)
    return np.dstack([flow, optical_strain(flow, form)]).astype(np.float32)


def magnitude(flow: np.ndarray) -> np.ndarray:
    return np.hypot(flow[..., 0], flow[..., 1])
