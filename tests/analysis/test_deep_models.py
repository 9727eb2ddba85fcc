"""The deep recognisers on tiny inputs on CPU: a few steps on one batch lower the
loss; every TSFmicro fusion gives the right shapes; EEGNet from braindecode."""

from __future__ import annotations

import os

import pytest

from mmmelab.analysis.recognition.deep import FUSIONS, model, train_steps

# the [models] extra (./scripts/setup.sh --dev installs it); in CI a missing torch fails
torch = __import__("torch") if os.environ.get("CI") else pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(300)


def _batch(n=8, size=32, channels=1, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    onset = torch.rand(n, channels, size, size, generator=g)
    labels = torch.arange(n) % classes
    apex = onset.clone()
    for i in range(n):  # each class moves a different quarter of the face
        q = int(labels[i])
        apex[i, :, (q % 2) * size // 2 : (q % 2 + 1) * size // 2, : size // 2] += 0.5
    return onset, apex, labels


@pytest.mark.parametrize("fusion", FUSIONS)
def test_tsfmicro_every_fusion_has_the_right_shapes(fusion):
    net = model("TSFmicro", n_classes=3, size=32, dim=32, heads=4, retention_layers=2,
                vit_layers=2, fusion=fusion, head_dim=64)  # fmt: skip
    onset, apex, _ = _batch()
    assert tuple(net(onset, apex).shape) == (8, 3)


def test_tsfmicro_learns_a_tiny_batch():
    torch.manual_seed(0)
    net = model("TSFmicro", n_classes=3, size=32, dim=32, heads=4, retention_layers=2,
                vit_layers=1, head_dim=64)  # fmt: skip
    onset, apex, labels = _batch()
    losses = train_steps(net, (onset, apex), labels, steps=25)
    assert losses[-1] < 0.5 * losses[0], losses


def test_htnet_learns_a_tiny_batch():
    torch.manual_seed(0)
    net = model("HTNet", n_classes=3, size=32, channels=3, dim=32, heads=4, depth=1, patch=4)
    onset, apex, labels = _batch(channels=3)
    flow = apex - onset
    assert tuple(net(flow).shape) == (8, 3)
    losses = train_steps(net, (flow,), labels, steps=25)
    assert losses[-1] < 0.5 * losses[0], losses


def test_eegnet_from_braindecode_learns_a_tiny_batch():
    torch.manual_seed(0)
    net = model("EEGNet", n_chans=8, n_classes=2, n_times=256)
    x = torch.randn(8, 8, 256)
    y = torch.arange(8) % 2
    x[y == 1, :4] += torch.sin(torch.arange(256) / 3.0)  # class 1 carries a rhythm
    losses = train_steps(net, (x,), y, steps=30, lr=3e-3)
    assert losses[-1] < losses[0], losses


def test_bad_model_settings_are_one_line():
    from mmmelab.errors import LabError

    with pytest.raises(LabError, match="fusion"):
        model("TSFmicro", n_classes=3, size=32, fusion="middle")
    with pytest.raises(LabError, match="multiple of 16"):
        model("TSFmicro", n_classes=3, size=40)
    with pytest.raises(LabError, match="no deep model"):
        model("ResNet", n_classes=3)
