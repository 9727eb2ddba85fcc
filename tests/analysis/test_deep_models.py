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


def _flow_study(n_subjects=4, per=6, side=64, seed=0):
    """Flow stacks of two classes (class 1 moves the upper left quarter), subjects."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n_subjects * per, 3, side, side)).astype(np.float32)
    y = np.array(["a", "b"] * (n_subjects * per // 2), dtype=object)
    x[y == "b", 0, : side // 2, : side // 2] += 2.0
    subjects = np.repeat([f"S{i}" for i in range(n_subjects)], per)
    return x, y, subjects


def test_deep_learner_chooses_its_epochs_on_the_training_subjects_only():
    import numpy as np

    from mmmelab.analysis.recognition.training import DeepLearner, TrainSettings

    x, y, subjects = _flow_study()
    train, test = np.flatnonzero(subjects != "S3"), np.flatnonzero(subjects == "S3")
    ticks = []
    settings = TrainSettings(epochs=3, batch=6, epoch_progress=lambda d, t, n: ticks.append(d))

    def run(inputs):
        ln = DeepLearner("htnet", [inputs], np.ones(len(y), bool), settings, 2)
        return ln, ln.fit_predict(y, subjects, train, test, ["a", "b"], 3, seed=1)

    ln, got = run(x)
    assert 1 <= got.params["epochs"] <= 3 and len(got.params["inner_uar_by_epoch"]) == 3
    assert got.probabilities.shape == (len(test), 2)
    assert np.allclose(got.probabilities.sum(1), 1.0, atol=1e-5)
    assert sorted(got.inner_index.tolist()) == train.tolist()  # inner predictions: train only
    assert ticks[-1] == 3 * 3 + got.params["epochs"] and ln.samples_per_s() > 0
    scrambled = x.copy()
    scrambled[test] = np.random.default_rng(9).normal(0, 5, scrambled[test].shape)
    _, again = run(scrambled)  # the test subject changed: nothing chosen may change
    assert again.params == got.params and again.inner_predictions == got.inner_predictions
    assert again.inner_uar == got.inner_uar


def test_no_cuda_is_one_line():
    import numpy as np

    from mmmelab.analysis.recognition.training import DeepLearner, TrainSettings
    from mmmelab.errors import LabError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    x, _, _ = _flow_study(2, 2)
    with pytest.raises(LabError, match="no CUDA device"):
        DeepLearner("htnet", [x], np.ones(len(x), bool), TrainSettings(device="cuda"), 2)
