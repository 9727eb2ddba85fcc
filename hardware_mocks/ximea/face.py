"""A simulated face worth spotting on: a textured face whose motions follow a script.

The face is drawn once as a texture (skin with pores and blotches, hair, brows, eyes
with iris and pupil, nose, lips, on the rig's green backdrop), plus the same face
with its eyes closed. Each frame is then rendered from the texture, straight into
the RAW8 Bayer mosaic (RGGB), by one compiled pass:

- **expressions**: action-unit-like local deformations (Gaussian displacement
  fields at the AU's site: brows up or down and in, cheeks up, nose wrinkle, lip
  corners up, down or out) with a smooth rise to the apex and fall to the offset;
  a micro-expression moves the skin by a few pixels at 2040x1080, a
  macro-expression by several times that;
- **blinks**: the upper lid sweeps down over the eye and back (100-300 ms);
- **the head**: slow drift (a sum of slow random sinusoids, a few pixels) plus
  small sudden moves (a smooth step of 3-10 px and a fraction of a degree, some of
  them nods that come back);
- **light**: a slow change of a few per cent and a slight left-right gradient;
- **sensor noise**: Gaussian, from a precomputed field read at a random offset.

Every event is in :meth:`FaceScript.truth`, so a spotter can be scored against it
and its false positives traced to blinks or head moves. Sizes are fractions of the
face scale ``s = min(height, width)``, so the same script renders at any size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

# AU sites: (x, y relative to the face centre, direction x, y, sigma x, y), in units
# of the face scale s; "l"/"r" are the participant's left and right (image right/left).
_AU: dict[str, list[tuple[float, float, float, float, float, float]]] = {
    "1": [(-0.05, -0.15, 0, -1, 0.035, 0.03), (0.05, -0.15, 0, -1, 0.035, 0.03)],
    "2": [(-0.15, -0.15, 0, -1, 0.035, 0.03), (0.15, -0.15, 0, -1, 0.035, 0.03)],
    "4": [(-0.08, -0.14, 0.5, 0.85, 0.04, 0.03), (0.08, -0.14, -0.5, 0.85, 0.04, 0.03)],
    "5": [(-0.11, -0.105, 0, -1, 0.04, 0.012), (0.11, -0.105, 0, -1, 0.04, 0.012)],
    "6": [(-0.13, 0.03, 0, -1, 0.05, 0.04), (0.13, 0.03, 0, -1, 0.05, 0.04)],
    "7": [(-0.11, -0.06, 0, -1, 0.04, 0.012), (0.11, -0.06, 0, -1, 0.04, 0.012)],
    "9": [(0.0, -0.03, 0, -1, 0.035, 0.05)],
    "10": [(0.0, 0.145, 0, -1, 0.06, 0.02)],
    "12": [(-0.09, 0.17, -0.7, -0.7, 0.03, 0.03), (0.09, 0.17, 0.7, -0.7, 0.03, 0.03)],
    "14": [(-0.09, 0.17, -1.0, -0.25, 0.03, 0.03), (0.09, 0.17, 1.0, -0.25, 0.03, 0.03)],
    "15": [(-0.09, 0.18, -0.3, 0.95, 0.03, 0.03), (0.09, 0.18, 0.3, 0.95, 0.03, 0.03)],
    "20": [(-0.09, 0.175, -1, 0, 0.035, 0.03), (0.09, 0.175, 1, 0, 0.035, 0.03)],
}
#: the AUs each emotion moves (FACS prototypes, as CASME II and DFME code them)
EMOTION_AUS: dict[str, str] = {
    "happiness": "6+12",
    "surprise": "1+2+5",
    "sadness": "1+4+15",
    "fear": "1+2+4+20",
    "anger": "4+7",
    "disgust": "9+10",
    "contempt": "R14",
    "others": "4",
}
EYES = ((-0.11, -0.08), (0.11, -0.08))  # eye centres; the eye is 0.05 s wide, 0.022 s high
EYE_RX, EYE_RY = 0.05, 0.022
FACE_RX, FACE_RY = 0.30, 0.40


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(img, (sigma, sigma, 0) if img.ndim == 3 else sigma)


def face_texture(height: int, width: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(open, closed): float32 (3, height, width) textures, eyes open and eyes closed."""
    rng = np.random.default_rng(seed)
    h, w, s = height, width, float(min(height, width))
    cy, cx = h / 2.0, w / 2.0
    y, x = np.mgrid[:h, :w].astype(np.float32)
    u, v = (x - cx) / s, (y - cy) / s  # face coordinates

    def ell(x0: float, y0: float, rx: float, ry: float) -> np.ndarray:
        return ((u - x0) / rx) ** 2 + ((v - y0) / ry) ** 2

    def fine(sigma_px: float, amp: float) -> np.ndarray:
        n = rng.standard_normal((h, w)).astype(np.float32)
        n = _blur(n, max(sigma_px, 0.5))
        return amp * n / max(float(n.std()), 1e-6)

    img = np.empty((h, w, 3), np.float32)
    img[:] = (40, 170, 60)
    img *= (0.92 + 0.08 * (1 - v))[..., None] + fine(s * 0.02, 0.02)[..., None]
    face = ell(0, 0, FACE_RX, FACE_RY)
    shade = np.clip(1.0 - 0.28 * face, 0.6, 1.0)
    skin = np.array((222, 176, 146), np.float32) * shade[..., None]
    skin += (fine(s * 0.015, 6.0) + fine(0.8, 5.0) + fine(2.0, 3.0))[..., None]
    cheek = np.exp(-((np.abs(u) - 0.14) ** 2 + (v - 0.06) ** 2) / (2 * 0.05**2))
    skin += cheek[..., None] * np.array((10, -8, -6), np.float32)
    neck = (np.abs(u) < 0.16) & (v > 0.25)
    img[neck] = skin[neck] * 0.85
    for side in (-1, 1):  # ears
        img[ell(side * 0.30, -0.02, 0.04, 0.08) <= 1] = (
            skin[ell(side * 0.30, -0.02, 0.04, 0.08) <= 1] * 0.9
        )
    img[face <= 1] = skin[face <= 1]
    hair = (ell(0, -0.17, 0.33, 0.30) <= 1) & (
        (v < -0.27) | (ell(0, 0.02, 0.29, 0.33) > 1) & (v < -0.05)
    )
    strands = 1 + 0.25 * np.sin(u * 400 + fine(3.0, 2.0)) + fine(1.0, 0.1)
    img[hair] = np.array((55, 38, 28), np.float32)[None] * strands[hair][:, None]
    nose = np.exp(-((u / 0.03) ** 2)) * (v > -0.1) * (v < 0.06)
    img -= (nose * 14)[..., None] * (np.abs(u) > 0.012)[..., None]
    img += (nose * 10)[..., None] * (np.abs(u) <= 0.012)[..., None]
    for side in (-1, 1):
        img[ell(side * 0.022, 0.075, 0.012, 0.007) <= 1] = (95, 55, 45)  # nostrils
    lips = ell(0, 0.178, 0.085, 0.024) <= 1
    img[lips] = np.array((172, 78, 80), np.float32) + fine(1.0, 4.0)[lips][:, None]
    img[np.abs(v - 0.178 - 0.004 * np.cos(u * 25)) < 0.003 * (np.abs(u) < 0.08)] = (80, 30, 35)
    for ex, ey in EYES:  # brows, lid creases, eyes
        arch = ey - 0.07 - 0.012 * np.cos((u - ex) / 0.07 * 1.4)
        brow = (np.abs(v - arch) < 0.011) & (np.abs(u - ex) < 0.065)
        img[brow] = np.array((60, 42, 32), np.float32) * (1 + fine(0.7, 0.25)[brow])[:, None]
        crease = (np.abs(ell(ex, ey - 0.006, EYE_RX * 1.05, EYE_RY * 1.5) - 1) < 0.08) & (v < ey)
        img[crease] *= 0.82
    closed = img.copy()
    for ex, ey in EYES:
        eye = ell(ex, ey, EYE_RX, EYE_RY) <= 1
        img[eye] = (236, 232, 226)
        img[ell(ex, ey, 0.016, 0.016) <= 1] = (95, 65, 40)  # iris
        img[ell(ex, ey, 0.007, 0.007) <= 1] = (20, 15, 12)  # pupil
        img[(ell(ex, ey, EYE_RX, EYE_RY) <= 1) & (ell(ex, ey, EYE_RX, EYE_RY) > 0.8)] *= 0.6
        closed[eye] = skin[eye] * 0.92
        lash = (np.abs(ell(ex, ey + 0.014, EYE_RX, 0.012) - 1) < 0.2) & (v > ey)
        closed[lash & eye] = (70, 45, 35)
    img = _blur(img, max(0.6, s * 0.0012))
    closed = _blur(closed, max(0.6, s * 0.0012))
    return (np.ascontiguousarray(np.clip(img, 0, 255).transpose(2, 0, 1)),
            np.ascontiguousarray(np.clip(closed, 0, 255).transpose(2, 0, 1)))  # fmt: skip


def au_field(height: int, width: int, aus: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """float32 (2, box h, box w): the displacement of ``aus`` (e.g. "6+12", "R14")
    over ``box`` = (x0, y0, w, h), its largest magnitude 1 pixel."""
    x0, y0, bw, bh = box
    s = float(min(height, width))
    cy, cx = height / 2.0, width / 2.0
    y, x = np.mgrid[y0 : y0 + bh, x0 : x0 + bw].astype(np.float32)
    u, v = (x - cx) / s, (y - cy) / s
    out = np.zeros((2, bh, bw), np.float32)
    for au in aus.split("+"):
        side = au[0] if au[0] in "LR" else ""
        for ax, ay, dx, dy, sx, sy in _AU[au.lstrip("LR")]:
            if (side == "R" and ax > 0) or (side == "L" and ax < 0):
                continue  # participant's right is image left
            g = np.exp(-0.5 * (((u - ax) / sx) ** 2 + ((v - ay) / sy) ** 2))
            out[0] += dx * g
            out[1] += dy * g
    peak = float(np.hypot(out[0], out[1]).max())
    return out / peak if peak > 0 else out


def _bump(t: float, onset: float, apex: float, offset: float) -> float:
    """0 before ``onset``, a raised-cosine rise to 1 at ``apex``, a fall to 0 at ``offset``."""
    if t <= onset or t >= offset:
        return 0.0
    if t <= apex:
        return 0.5 - 0.5 * float(np.cos(np.pi * (t - onset) / max(apex - onset, 1e-6)))
    return 0.5 + 0.5 * float(np.cos(np.pi * (t - apex) / max(offset - apex, 1e-6)))


@dataclass
class FaceScript:
    """What the face does, on a time axis in seconds (any origin the caller chooses)."""

    expressions: list[dict[str, Any]] = field(default_factory=list)  # onset apex offset aus px
    blinks: list[tuple[float, float]] = field(default_factory=list)  # (start, duration)
    head_moves: list[dict[str, Any]] = field(default_factory=list)  # t dur dx dy rot_deg back
    drift: list[tuple[float, float, float, float]] = field(default_factory=list)
    light: list[tuple[float, float, float]] = field(default_factory=list)  # amp period phase
    noise_sigma: float = 2.0
    seed: int = 0

    @classmethod
    def random(
        cls, start: float, end: float, expressions: list[dict[str, Any]], scale: float,
        seed: int = 0, blink_rate_hz: float = 0.25, head_move_rate_hz: float = 0.05,
    ) -> FaceScript:  # fmt: skip
        """Blinks, head moves, drift and light for [start, end] around ``expressions``
        (dicts with kind, onset, apex, offset, emotion; ``px`` is added: the peak
        displacement in pixels for a face of scale ``scale``)."""
        rng = np.random.default_rng(seed)
        px = scale / 1080.0
        exprs = []
        for e in expressions:
            amp = rng.uniform(2.0, 4.0) if e["kind"] == "ME" else rng.uniform(7.0, 14.0)
            aus = e.get("aus") or EMOTION_AUS.get(e.get("emotion", "others"), "4")
            exprs.append({**e, "aus": aus, "px": float(amp * px)})
        blinks, t = [], start + rng.exponential(1 / blink_rate_hz)
        while t < end:
            blinks.append((float(t), float(rng.uniform(0.12, 0.3))))
            t += 0.5 + rng.exponential(1 / blink_rate_hz)
        moves, t = [], start + rng.exponential(1 / head_move_rate_hz)
        while t < end:
            moves.append(
                {
                    "t": float(t),
                    "duration": float(rng.uniform(0.1, 0.25)),
                    "dx": float(rng.uniform(-8, 8) * px),
                    "dy": float(rng.uniform(-6, 6) * px),
                    "rot_deg": float(rng.uniform(-0.4, 0.4)),
                    "back": bool(rng.random() < 0.4),
                }
            )
            t += 1.0 + rng.exponential(1 / head_move_rate_hz)
        drift = [(float(rng.uniform(1.0, 3.0) * px), float(rng.uniform(15, 90)),
                  float(rng.uniform(0, 2 * np.pi)), float(k)) for k in range(4)]  # fmt: skip
        light = [(float(rng.uniform(0.01, 0.03)), float(rng.uniform(20, 60)),
                  float(rng.uniform(0, 2 * np.pi))) for _ in range(2)]  # fmt: skip
        return cls(exprs, blinks, moves, drift, light, 2.0, seed)

    def pose(self, t: float) -> tuple[float, float, float]:
        """(dx, dy, rotation in degrees) of the head at ``t``."""
        dx = dy = rot = 0.0
        for amp, period, phase, k in self.drift:  # components 0,1: x; 2,3: y
            val = amp * float(np.sin(2 * np.pi * t / period + phase))
            if k < 2:
                dx += val
            else:
                dy += val
        for m in self.head_moves:
            if t <= m["t"]:
                continue
            if m["back"]:
                f = _bump(t, m["t"], m["t"] + m["duration"], m["t"] + 2.5 * m["duration"])
            else:
                f = (
                    1.0
                    if t >= m["t"] + m["duration"]
                    else _bump(t, m["t"], m["t"] + m["duration"], 1e18)
                )
            dx, dy, rot = dx + f * m["dx"], dy + f * m["dy"], rot + f * m["rot_deg"]
        return dx, dy, rot

    def blink(self, t: float) -> float:
        """How far the lids are closed at ``t`` (0 open, 1 shut)."""
        for b0, dur in self.blinks:
            if b0 < t < b0 + dur:
                return _bump(t, b0, b0 + 0.4 * dur, b0 + dur)
        return 0.0

    def level(self, t: float) -> float:
        return 1.0 + sum(a * float(np.sin(2 * np.pi * t / p + ph)) for a, p, ph in self.light)

    def truth(self) -> dict[str, Any]:
        return {"expressions": self.expressions, "blinks": [list(b) for b in self.blinks],
                "head_moves": self.head_moves, "drift": [list(d) for d in self.drift],
                "light": [list(li) for li in self.light], "noise_sigma": self.noise_sigma,
                "seed": self.seed}  # fmt: skip


@numba.njit(parallel=True, nogil=True, cache=False)
def _render(
    tex: np.ndarray, closed: np.ndarray, fields: np.ndarray, amps: np.ndarray, box: np.ndarray,
    pose: np.ndarray, eyes: np.ndarray, lid: float, light: float, grad: float,
    noise: np.ndarray, noy: int, nox: int, out: np.ndarray,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    """One RGGB mosaic frame into ``out`` (see ``FaceRenderer.render``)."""
    h, w = out.shape
    nh, nw = noise.shape
    x0, y0, bw, bh = box[0], box[1], box[2], box[3]
    cx, cy, a, b, tx, ty = pose[0], pose[1], pose[2], pose[3], pose[4], pose[5]
    for y in numba.prange(h):
        for x in range(w):
            c = (y & 1) + (x & 1)  # R, G, G, B
            if x0 <= x < x0 + bw and y0 <= y < y0 + bh:
                px, py = x - cx - tx, y - cy - ty
                qx, qy = cx + a * px + b * py, cy - b * px + a * py
                ix, iy = int(qx) - x0, int(qy) - y0
                if 0 <= ix < bw and 0 <= iy < bh:
                    for k in range(len(amps)):
                        if amps[k] != 0.0:
                            qx -= amps[k] * fields[k, 0, iy, ix]
                            qy -= amps[k] * fields[k, 1, iy, ix]
                src = tex
                if lid > 0.0:
                    for e in range(eyes.shape[0]):
                        du = (qx - eyes[e, 0]) / eyes[e, 2]
                        dv = (qy - eyes[e, 1]) / eyes[e, 3]
                        if du * du + dv * dv <= 1.0 and dv < -1.0 + 2.1 * lid:
                            src = closed
                qx = min(max(qx, 0.0), w - 1.001)
                qy = min(max(qy, 0.0), h - 1.001)
                xi, yi = int(qx), int(qy)
                fx, fy = qx - xi, qy - yi
                val = (1.0 - fy) * ((1.0 - fx) * src[c, yi, xi] + fx * src[c, yi, xi + 1]) + fy * (
                    (1.0 - fx) * src[c, yi + 1, xi] + fx * src[c, yi + 1, xi + 1]
                )
            else:
                val = tex[c, y, x]
            val = val * (light + grad * (x - cx) / w) + noise[(y + noy) % nh, (x + nox) % nw]
            out[y, x] = min(255, max(0, int(val + 0.5)))


class FaceRenderer:
    """Renders a :class:`FaceScript` as RAW8 RGGB frames of ``width`` x ``height``."""

    def __init__(self, width: int, height: int, script: FaceScript, seed: int = 3) -> None:
        self.width, self.height, self.script = width, height, script
        s = float(min(width, height))
        self.tex, self.closed = face_texture(height, width, seed)
        cx, cy = width / 2.0, height / 2.0
        x0, y0 = max(0, int(cx - 0.40 * s)), max(0, int(cy - 0.50 * s))
        x1, y1 = min(width, int(cx + 0.40 * s) + 1), min(height, int(cy + 0.50 * s) + 1)
        self.box = np.array([x0, y0, x1 - x0, y1 - y0], np.int64)
        kinds = sorted({e["aus"] for e in script.expressions})
        self.field_of = {aus: i for i, aus in enumerate(kinds)}
        box = (x0, y0, x1 - x0, y1 - y0)
        self.fields = np.zeros((max(1, len(kinds)), 2, y1 - y0, x1 - x0), np.float32)
        for aus, i in self.field_of.items():
            self.fields[i] = au_field(height, width, aus, box)
        self.eyes = np.array(
            [(cx + ex * s, cy + ey * s, EYE_RX * s, EYE_RY * s) for ex, ey in EYES], np.float64
        )
        rng = np.random.default_rng(script.seed + 101)
        self.noise = rng.normal(0.0, script.noise_sigma, (height, width)).astype(np.float32)
        self._rng = np.random.default_rng(script.seed + 202)
        self._by_onset = sorted(script.expressions, key=lambda e: e["onset"])
        self._longest = max((e["offset"] - e["onset"] for e in self._by_onset), default=0.0)
        self._onsets = [e["onset"] for e in self._by_onset]

    def amplitudes(self, t: float) -> np.ndarray:
        """Displacement in pixels of each AU field at ``t``."""
        import bisect

        amps = np.zeros(len(self.fields), np.float32)
        hi = bisect.bisect_right(self._onsets, t)
        lo = bisect.bisect_left(self._onsets, t - self._longest)
        for e in self._by_onset[lo:hi]:
            f = _bump(t, e["onset"], e["apex"], e["offset"])
            if f > 0:
                amps[self.field_of[e["aus"]]] += e["px"] * f
        return amps

    def render(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """The mosaic of the frame exposed at ``t`` (uint8, height x width)."""
        if out is None:
            out = np.empty((self.height, self.width), np.uint8)
        dx, dy, rot = self.script.pose(t)
        th = np.deg2rad(rot)
        pose = np.array(
            [self.width / 2.0, self.height / 2.0, np.cos(th), np.sin(th), dx, dy], np.float64
        )
        grad = 0.015 * float(np.sin(2 * np.pi * t / 45.0))
        noy = int(self._rng.integers(0, self.height))
        nox = int(self._rng.integers(0, self.width))
        _render(self.tex, self.closed, self.fields, self.amplitudes(t), self.box, pose,
                self.eyes, self.script.blink(t), self.script.level(t), grad, self.noise,
                noy, nox, out)  # fmt: skip
        return out
