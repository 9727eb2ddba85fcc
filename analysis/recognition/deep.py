"""The deep recognisers, written from their papers' descriptions (PyTorch; the
``[models]`` extra: ``pip install "mmme-lab[models]"``).

* **TSFmicro** (TSF section 3, paper_spec.md section 10): a temporal branch on the
  difference apex - onset (eq. 1) through a convolutional stem (3x3 conv, batch norm,
  GELU, eqs. 3-5; four of them halve the side to 1/16) and retention blocks (eq. 2:
  multi-scale retention in its parallel form, o = (Q K^T * D) V with the decay
  D_nm = gamma^(n-m) for n >= m, rotated queries and keys, a swish gate), and a
  spatial branch on the onset frame through a patch embedding (kernel = stride =
  16, eq. 6), a learnable position embedding (eq. 8) and two transformer blocks;
  fused by ``fusion``: ``late`` (F_t + F_s, eq. 9; the paper's best), ``early``
  (difference and onset as channels of one temporal branch), ``t2s`` (the temporal
  features added to the spatial tokens before the spatial blocks) or ``s2t`` (the
  other way); then FC 1024, LayerNorm, swish, average pooling and the classifier
  (eqs. 10-13). Sizes are parameters (the paper: 224 px, 512 wide, 5 retention
  layers); the tests use tiny ones.
* **HTNet** (the face model MMME fuses, on the onset->apex ``(u, v, strain)`` stack):
  its hierarchy as the paper describes it - four facial regions (the two eye-brow
  quarters and the two mouth quarters of the fixed face box, since no landmark
  model ships here), each through its own patch embedding and transformer blocks,
  then aggregated pairwise (left with right) and once more over the whole face,
  each aggregation a convolutional merge followed by a transformer block.
* **EEGNet**: braindecode's, on the 10 s EEG windows (channels x 2000 at 200 Hz).

``train_steps`` runs a few optimisation steps (AdamW, cross-entropy) for the tests
and the throughput figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mmmelab.errors import LabError

INSTALL = (
    'the deep models need PyTorch: pip install "mmme-lab[models]" (or ./scripts/setup.sh --models)'
)


def torch_modules() -> tuple[Any, Any]:
    """(torch, torch.nn), or a one-line error saying how to install them."""
    try:
        import torch
        from torch import nn
    except ImportError:
        raise LabError(INSTALL) from None
    return torch, nn


def _build() -> dict[str, Any]:
    torch, nn = torch_modules()
    module: Any = nn.Module

    class ConvStem(module):
        def __init__(self, cin: int, dim: int, downs: int = 4) -> None:
            super().__init__()
            layers: list[Any] = []
            c = cin
            for k in range(downs):
                cout = dim if k == downs - 1 else max(16, dim // 2 ** (downs - 1 - k))
                layers += [nn.Conv2d(c, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout),
                           nn.GELU()]  # fmt: skip
                c = cout
            self.body = nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            y = self.body(x)  # (B, D, h, w)
            return y.flatten(2).transpose(1, 2)  # tokens (B, h*w, D)

    class Retention(module):
        """Multi-scale retention, parallel form (TSF eq. 2)."""

        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads, self.hd = heads, dim // heads
            self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
            self.g, self.o = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
            self.norm = nn.GroupNorm(heads, dim)
            gammas = 1 - 2.0 ** (-5 - torch.arange(heads, dtype=torch.float32))
            self.register_buffer("log_gamma", torch.log(gammas), persistent=False)
            theta = 10000 ** (-torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd)
            self.register_buffer("theta", theta, persistent=False)

        def _rotate(self, x: Any, pos: Any) -> Any:
            ang = pos[:, None] * self.theta[None, :]  # (N, hd/2)
            cos, sin = ang.cos(), ang.sin()
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)

        def forward(self, x: Any) -> Any:
            b, n, d = x.shape
            pos = torch.arange(n, dtype=x.dtype, device=x.device)

            def split(t: Any) -> Any:
                return t.view(b, n, self.heads, self.hd).transpose(1, 2)  # (B, H, N, hd)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            q, k = self._rotate(q, pos), self._rotate(k, pos)
            diff = pos[:, None] - pos[None, :]  # n - m
            decay = torch.where(diff >= 0, torch.exp(self.log_gamma[:, None, None] * diff),
                                torch.zeros((), dtype=x.dtype, device=x.device))  # fmt: skip
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) * decay  # (B, H, N, N)
            out = (att @ v).transpose(1, 2).reshape(b, n, d)
            out = self.norm(out.transpose(1, 2)).transpose(1, 2)
            return self.o(nn.functional.silu(self.g(x)) * out)

    class Block(module):
        """Pre-norm residual block: retention or self-attention, then an MLP."""

        def __init__(self, dim: int, heads: int, kind: str) -> None:
            super().__init__()
            self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.kind = kind
            self.mix = (Retention(dim, heads) if kind == "retention"
                        else nn.MultiheadAttention(dim, heads, batch_first=True))  # fmt: skip
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x: Any) -> Any:
            h = self.n1(x)
            x = x + (self.mix(h) if self.kind == "retention" else self.mix(h, h, h)[0])
            return x + self.mlp(self.n2(x))

    class TSFmicro(module):
        def __init__(
            self,
            n_classes: int,
            size: int = 224,
            channels: int = 1,
            dim: int = 512,
            heads: int = 8,
            retention_layers: int = 5,
            vit_layers: int = 2,
            patch: int = 16,
            fusion: str = "late",
            head_dim: int = 1024,
        ) -> None:
            super().__init__()
            if fusion not in FUSIONS:
                raise LabError(f"TSFmicro fusion {fusion!r}: one of {', '.join(FUSIONS)}")
            if size % patch:
                raise LabError(f"TSFmicro: the image side {size} must be a multiple of {patch}")
            self.fusion = fusion
            downs = int(round(math.log2(patch)))
            tokens = (size // patch) ** 2
            self.stem = ConvStem(2 * channels if fusion == "early" else channels, dim, downs)
            self.temporal = nn.ModuleList(Block(dim, heads, "retention")
                                          for _ in range(retention_layers))  # fmt: skip
            self.patch = nn.Conv2d(channels, dim, patch, stride=patch)  # eq. 6
            self.pos = nn.Parameter(torch.zeros(1, tokens, dim))  # eq. 8
            nn.init.trunc_normal_(self.pos, std=0.02)
            self.spatial = nn.ModuleList(Block(dim, heads, "attention") for _ in range(vit_layers))
            self.s_norm = nn.LayerNorm(dim)
            self.fc = nn.Linear(dim, head_dim)  # eqs. 10-13
            self.norm = nn.LayerNorm(head_dim)
            self.cls = nn.Linear(head_dim, n_classes)

        def _t(self, tokens: Any) -> Any:
            for blk in self.temporal:
                tokens = blk(tokens)
            return tokens

        def _s(self, tokens: Any) -> Any:
            for blk in self.spatial:
                tokens = blk(tokens)
            return self.s_norm(tokens)

        def forward(self, onset: Any, apex: Any) -> Any:
            diff = apex - onset  # eq. 1
            sp = self.patch(onset).flatten(2).transpose(1, 2) + self.pos
            if self.fusion == "late":
                f = self._t(self.stem(diff)) + self._s(sp)  # eq. 9
            elif self.fusion == "early":
                f = self._t(self.stem(torch.cat([diff, onset], 1)))
            elif self.fusion == "t2s":
                f = self._s(sp + self._t(self.stem(diff)))
            else:  # s2t
                f = self._t(self.stem(diff) + self._s(sp))
            h = nn.functional.silu(self.norm(self.fc(f)))  # eqs. 10, 11
            return self.cls(h.mean(1))  # eqs. 12, 13

    class Region(module):
        def __init__(self, cin: int, dim: int, patch: int, heads: int, depth: int) -> None:
            super().__init__()
            self.embed = nn.Conv2d(cin, dim, patch, stride=patch)
            self.blocks = nn.ModuleList(Block(dim, heads, "attention") for _ in range(depth))

        def forward(self, x: Any) -> Any:
            t = self.embed(x)
            b, d, h, w = t.shape
            t = t.flatten(2).transpose(1, 2)
            for blk in self.blocks:
                t = blk(t)
            return t.transpose(1, 2).reshape(b, d, h, w)

    class Merge(module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim),
                                      nn.GELU())  # fmt: skip
            self.block = Block(dim, heads, "attention")

        def forward(self, x: Any) -> Any:
            y = self.conv(x)
            b, d, h, w = y.shape
            t = self.block(y.flatten(2).transpose(1, 2))
            return t.transpose(1, 2).reshape(b, d, h, w)

    class HTNet(module):
        def __init__(self, n_classes: int, size: int = 128, channels: int = 3, dim: int = 64,
                     heads: int = 4, depth: int = 2, patch: int = 8) -> None:  # fmt: skip
            super().__init__()
            if size % (2 * patch):
                raise LabError(f"HTNet: the image side {size} must be a multiple of {2 * patch}")
            self.half = size // 2
            self.regions = nn.ModuleList(Region(channels, dim, patch, heads, depth)
                                         for _ in range(4))  # fmt: skip
            self.pair = nn.ModuleList(Merge(dim, heads) for _ in range(2))
            self.face = Merge(dim, heads)
            self.cls = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))

        def forward(self, x: Any) -> Any:
            h = self.half
            quarters = [x[..., :h, :h], x[..., :h, h:], x[..., h:, :h], x[..., h:, h:]]
            r = [net(q) for net, q in zip(self.regions, quarters, strict=True)]
            eyes = self.pair[0](torch.cat([r[0], r[1]], -1))  # left | right, side by side
            mouth = self.pair[1](torch.cat([r[2], r[3]], -1))
            face = self.face(torch.cat([eyes, mouth], -2))  # eyes over mouth
            return self.cls(face.mean((-2, -1)))

    return {"TSFmicro": TSFmicro, "HTNet": HTNet}


FUSIONS = ("late", "early", "t2s", "s2t")
_MODELS: dict[str, Any] = {}


def model(name: str, **kw: Any) -> Any:
    """``TSFmicro``, ``HTNet`` or ``EEGNet`` (braindecode), built with ``kw``."""
    if name == "EEGNet":
        torch_modules()
        try:
            import warnings

            # braindecode's import raises its own and pandas' deprecation notices
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from braindecode.models import EEGNet

                return EEGNet(n_chans=kw["n_chans"], n_outputs=kw["n_classes"],
                              n_times=kw["n_times"])  # fmt: skip
        except ImportError:
            raise LabError(INSTALL) from None
    if not _MODELS:
        _MODELS.update(_build())
    if name not in _MODELS:
        raise LabError(f"no deep model {name!r}: TSFmicro, HTNet or EEGNet")
    return _MODELS[name](**kw)


def train_steps(net: Any, inputs: Sequence[Any], labels: Any, steps: int = 10,
                lr: float = 8e-4, seed: int = 0) -> list[float]:  # fmt: skip
    """``steps`` AdamW steps of cross-entropy on one batch; the losses."""
    torch, nn = torch_modules()
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(*inputs), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
