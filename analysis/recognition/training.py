"""Training the deep recognisers over a protocol (the ``[models]`` extra).

A ``DeepLearner`` is one modality's deep model - HTNet on the onset->apex
``(u, v, strain)`` stack, TSFmicro on the onset and apex crops, EEGNet on the 10 s
EEG window (decimated to 100 Hz: the window was band-passed to 47 Hz, and EEGNet's
first layer is a temporal convolution whose cost grows with the samples) - trained
inside each outer fold:

1. **Epoch selection on the training subjects only** (paper_spec.md: the TSFmicro
   paper plots test curves; choosing the epoch there would leak the test subject).
   For each inner fold (subject folds of the outer training set) the model trains
   ``epochs`` epochs and is scored (UAR) on the inner held-out subjects after each;
   the epoch of best mean inner UAR (the earliest of equals) is chosen, and the inner
   predictions at that epoch are the vote's evidence (its weights), as for the SVMs.
2. **The final model** trains on all the outer training subjects for the chosen
   number of epochs and predicts the test subjects (classes and softmax
   probabilities).

Training: AdamW (lr 8e-4, weight decay 0.05, TSFmicro's optimiser), the learning
rate decayed by 0.95 per epoch, batch 32, cross-entropy weighted by the inverse
class frequency of the training set (the SVMs' ``balanced``), inputs standardised
per channel with the training set's statistics. Seeded: the same seed gives the same
initial weights and batch order on the CPU. A sample whose input is missing (no
face, no EEG) enters as zeros and is counted in ``params["missing_inputs"]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.recognition.dataset import FILE
from mmmelab.analysis.recognition.deep import model, torch_modules
from mmmelab.analysis.recognition.metrics import scores
from mmmelab.analysis.recognition.protocols import Learned, inner_folds
from mmmelab.errors import LabError

#: model sizes: ``cpu`` is what trains here in minutes; ``paper`` is the papers' size
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "htnet": {"cpu": {"size": 64, "dim": 32, "heads": 4, "depth": 2, "patch": 8},
              "paper": {"size": 128, "dim": 64, "heads": 4, "depth": 2, "patch": 8}},
    "tsfmicro": {"cpu": {"size": 128, "dim": 128, "heads": 4, "retention_layers": 2,
                         "vit_layers": 2, "patch": 16, "head_dim": 256},
                 "paper": {"size": 224, "dim": 512, "heads": 8, "retention_layers": 5,
                           "vit_layers": 2, "patch": 16, "head_dim": 1024}},
    "eegnet": {"cpu": {}, "paper": {}},
}  # fmt: skip
MODALITY = {"htnet": "face", "tsfmicro": "face", "eegnet": "eeg"}
EEG_DECIMATE = 2  # 200 Hz -> 100 Hz


@dataclass
class TrainSettings:
    epochs: int = 30
    batch: int = 32
    lr: float = 8e-4
    weight_decay: float = 0.05
    lr_decay: float = 0.95
    size: str = "cpu"
    device: str = "cpu"
    fusion: str = "late"  # TSFmicro's
    epoch_progress: Callable[[int, int, str], None] | None = field(default=None, repr=False)


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    """(C, H, W) -> (C, side, side): block means when the side divides, else bilinear."""
    c, h, w = img.shape
    if (h, w) == (side, side):
        return img
    if h % side == 0 and w % side == 0:
        return img.reshape(c, side, h // side, side, w // side).mean(axis=(2, 4))
    import cv2

    return np.stack([cv2.resize(ch, (side, side), interpolation=cv2.INTER_LINEAR) for ch in img])


def load_inputs(ds: Path, kind: str, index: Sequence[dict[str, Any]],
                size: str = "cpu") -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """The model's input arrays for every sample (float32) and which samples had one."""
    import h5py

    if kind not in MODALITY:
        raise LabError(f"no deep model {kind!r}: {', '.join(MODALITY)}")
    side = int(PRESETS[kind][size].get("size", 0))
    path = Path(ds) / FILE if Path(ds).is_dir() else Path(ds)
    with h5py.File(path, "r") as h5:
        got: list[list[np.ndarray] | None] = []
        for row in index:
            g = h5["samples"][row["sample"]]
            if kind == "eegnet":
                got.append([_eeg(np.asarray(g["eeg"]))] if "eeg" in g else None)
            elif "crops" not in g:
                got.append(None)
            elif kind == "htnet":
                got.append([_resize(np.asarray(g["flow"], dtype=np.float32), side)])
            else:
                on, apex, _ = (int(v) for v in g.attrs["keys_onset_apex_offset"])
                crops = g["crops"]
                got.append([_resize(np.asarray(crops[i], dtype=np.float32)[None] / 255.0, side)
                            for i in (on, apex)])  # fmt: skip
    have = np.array([g is not None for g in got])
    if not have.any():
        raise LabError(f"{ds}: no sample has the input {kind} needs "
                       f"({'an EEG window' if kind == 'eegnet' else 'face crops'})")  # fmt: skip
    shapes = {tuple(a.shape for a in g) for g in got if g is not None}
    if len(shapes) != 1:
        raise LabError(f"{ds}: {kind} inputs of different shapes {sorted(shapes)} "
                       f"(sessions with different EEG montages?)")  # fmt: skip
    template = next(g for g in got if g is not None)
    arrays = [np.stack([g[k] if g is not None else np.zeros_like(template[k]) for g in got])
              for k in range(len(template))]  # fmt: skip
    return [a.astype(np.float32) for a in arrays], have


def _eeg(x: np.ndarray) -> np.ndarray:
    from scipy.signal import decimate

    return decimate(x.astype(np.float64), EEG_DECIMATE, ftype="fir", axis=-1).astype(np.float32)


class DeepLearner:
    """One modality's deep model over a protocol (see the module's docstring)."""

    def __init__(self, kind: str, inputs: list[np.ndarray], have: np.ndarray,
                 settings: TrainSettings, n_classes: int) -> None:  # fmt: skip
        self.kind, self.name = kind, kind
        self.inputs, self.have, self.s = inputs, have, settings
        self.n_classes = n_classes
        self.torch, self.nn = torch_modules()
        if settings.device == "cuda" and not self.torch.cuda.is_available():
            raise LabError("--device cuda: PyTorch sees no CUDA device here; use --device cpu")
        if settings.device not in ("cpu", "cuda"):
            raise LabError(f"--device {settings.device}: cpu or cuda")
        self.samples_trained = 0
        self.train_s = 0.0

    # -- the network and its inputs ---------------------------------------------------
    def _net(self) -> Any:
        kw = dict(PRESETS[self.kind][self.s.size])
        if self.kind == "eegnet":
            c, t = self.inputs[0].shape[1:]
            return model("EEGNet", n_chans=int(c), n_times=int(t), n_classes=self.n_classes)
        if self.kind == "htnet":
            return model("HTNet", n_classes=self.n_classes, channels=3, **kw)
        return model("TSFmicro", n_classes=self.n_classes, channels=1, fusion=self.s.fusion, **kw)

    def _standardised(self, train: np.ndarray) -> list[Any]:
        """Every sample's inputs, standardised per channel by the training samples."""
        out = []
        for a in self.inputs:
            ref = a[train]
            axes = (0, *range(2, a.ndim))
            mean = ref.mean(axis=axes, keepdims=True)
            sd = ref.std(axis=axes, keepdims=True)
            sd[sd == 0] = 1.0
            out.append(self.torch.from_numpy(((a - mean) / sd).astype(np.float32)))
        return out

    # -- one training run ---------------------------------------------------------------
    def _fit(self, y: np.ndarray, train: np.ndarray, evals: Sequence[np.ndarray], epochs: int,
             seed: int, every_epoch: bool, note: str,
             tick: Callable[[str], None]) -> list[list[np.ndarray]]:  # fmt: skip
        """Train on ``train`` for ``epochs``; the softmax probabilities on each of
        ``evals`` after every epoch (``every_epoch``) or after the last only."""
        torch, nn = self.torch, self.nn
        dev = torch.device(self.s.device)
        torch.manual_seed(seed)
        net = self._net().to(dev)
        x = self._standardised(train)
        target = torch.from_numpy(y.astype(np.int64))
        counts = np.bincount(y[train], minlength=self.n_classes).astype(np.float64)
        w = np.where(counts > 0, len(train) / (self.n_classes * np.maximum(counts, 1)), 1.0)
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=dev))
        opt = torch.optim.AdamW(net.parameters(), lr=self.s.lr, weight_decay=self.s.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.s.lr_decay)
        rng = np.random.default_rng(seed)
        curves: list[list[np.ndarray]] = []
        for epoch in range(epochs):
            net.train()
            order = rng.permutation(train)
            t0 = time.perf_counter()
            for start in range(0, len(order), self.s.batch):
                b = order[start : start + self.s.batch]
                if len(b) < 2:  # batch norm needs two samples
                    continue
                opt.zero_grad()
                loss = loss_fn(net(*[a[b].to(dev) for a in x]), target[b].to(dev))
                loss.backward()
                opt.step()
                self.samples_trained += len(b)
            self.train_s += time.perf_counter() - t0
            sched.step()
            if every_epoch or epoch == epochs - 1:
                curves.append([self._proba(net, x, e, dev) for e in evals])
            tick(f"{note} epoch {epoch + 1}/{epochs}")
        return curves

    def _proba(self, net: Any, x: list[Any], idx: np.ndarray, dev: Any) -> np.ndarray:
        torch = self.torch
        net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(idx), 64):
                b = idx[start : start + 64]
                out.append(torch.softmax(net(*[a[b].to(dev) for a in x]), -1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_classes))

    # -- the Learner contract -----------------------------------------------------------
    def fit_predict(self, y: np.ndarray, subjects: np.ndarray, train: np.ndarray,
                    test: np.ndarray, labels: Sequence[str], inner_k: int,
                    seed: int) -> Learned:  # fmt: skip
        pos = {c: j for j, c in enumerate(labels)}
        yi = np.array([pos[str(v)] for v in y])
        folds = inner_folds(subjects, train, inner_k, seed)
        e_max = self.s.epochs
        total = len(folds) * e_max + e_max
        done = [0]

        def tick(note: str) -> None:
            done[0] += 1
            if self.s.epoch_progress:
                self.s.epoch_progress(done[0], total, f"{self.kind} {note}")

        per_fold = []
        for n, f in enumerate(folds):
            curve = self._fit(yi, f.train, [f.test], e_max, seed, True,
                              f"inner {n + 1}/{len(folds)}", tick)  # fmt: skip
            per_fold.append(curve)
        uar = np.zeros(e_max)
        for f, curve in zip(folds, per_fold, strict=True):
            truth = [str(v) for v in y[f.test]]
            for e in range(e_max):
                pred = [labels[k] for k in curve[e][0].argmax(1)]
                uar[e] += (scores(truth, pred, labels).uar or 0.0) / len(folds)
        best = int(np.argmax(uar))  # the earliest of equals
        inner_idx = np.concatenate([f.test for f in folds])
        inner_pred = [str(labels[k]) for c in per_fold for k in c[best][0].argmax(1)]
        total = len(folds) * e_max + best + 1
        final = self._fit(yi, train, [test], best + 1, seed, False, "final", tick)
        proba = final[-1][0]
        params = {"model": self.kind, "epochs": best + 1, "inner_uar_by_epoch":
                  [round(float(u), 4) for u in uar], "size": self.s.size,
                  "layers": PRESETS[self.kind][self.s.size] | (
                      {"fusion": self.s.fusion} if self.kind == "tsfmicro" else {}),
                  "missing_inputs": int((~self.have).sum())}  # fmt: skip
        return Learned([str(labels[k]) for k in proba.argmax(1)], proba, params, inner_idx,
                       inner_pred, float(uar[best]))  # fmt: skip

    def samples_per_s(self) -> float | None:
        return self.samples_trained / self.train_s if self.train_s > 0 else None


def throughput(ds: Path, index: Sequence[dict[str, Any]], kind: str, labels: Sequence[str],
               label_of: Sequence[str], settings: TrainSettings, epochs: int = 2,
               seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Training samples per second of ``kind`` on the dataset (``epochs`` over all)."""
    inputs, have = load_inputs(ds, kind, index, settings.size)
    ln = DeepLearner(kind, inputs, have, settings, len(labels))
    pos = {c: j for j, c in enumerate(labels)}
    yi = np.array([pos[str(v)] for v in label_of])
    everyone = np.arange(len(yi))
    ln._fit(yi, everyone, [], epochs, seed, False, "throughput", lambda note: None)
    return {"samples_per_s": round(ln.samples_per_s() or 0.0, 1), "samples": len(yi),
            "epochs": epochs, "batch": settings.batch, "size": settings.size,
            "layers": json.loads(json.dumps(PRESETS[kind][settings.size]))}  # fmt: skip
