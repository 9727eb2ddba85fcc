"""The extras: pyproject.toml and mmmelab/extras.py name the same packages, and a
missing one is said in one line with exit code 2 (scripts/extras_check.py proves it
on the built wheel in environments without them)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mmmelab import cli, extras
from mmmelab.acquisition import simulation
from mmmelab.errors import LabError

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in reqs}


def test_pyproject_extras_hold_what_extras_py_names_and_the_base_lacks():
    meta = project()
    base = names(meta["dependencies"])
    for extra, table in extras.EXTRAS.items():
        declared = names(meta["optional-dependencies"][extra])
        assert set(table.values()) <= declared, extra
        assert not set(table.values()) & base, f"{extra} names a base dependency"
    # what the recording PC needs stays in the base install
    assert {"numpy", "pylsl", "pyqt6", "h5py", "xiapipy", "pyserial"} <= base
    assert not {"neurokit2", "pandas", "torch", "scikit-learn"} & base


def test_require_names_the_extra_and_how_to_install_it(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "sim", {"no_such_module_xyz": "no-such-dist"})
    with pytest.raises(LabError) as err:
        simulation.require_sim()
    text = str(err.value)
    assert "the simulated lab needs the [sim] extra" in text
    assert "no-such-dist" in text and "pip install 'mmme-lab[sim]'" in text
    assert "setup.sh --sim" in text
    assert extras.missing("analysis") == []  # the test environment has everything


def test_the_simulated_lab_refuses_to_start_without_sim(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "sim", {"no_such_module_xyz": "no-such-dist"})
    with pytest.raises(extras.MissingExtraError):
        simulation.start_simulated_lab(None, lambda: 0.0)  # type: ignore[arg-type]


def test_extra_for_a_missing_module():
    assert extras.extra_for("neurokit2") == "analysis"
    assert extras.extra_for("cv2.optflow") == "analysis"
    assert extras.extra_for("torch.nn") == "models"
    assert extras.extra_for("numpy") is None
    assert extras.extra_for(None) is None


def test_cli_turns_a_missing_extra_into_one_line(monkeypatch, capsys):
    def features(args):
        raise ModuleNotFoundError("No module named 'mne_bids'", name="mne_bids")

    monkeypatch.setattr("mmmelab.analysiscli.features", features)
    code = cli.main(["features", "x", "--out", "y"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR and len(err) == 1
    assert err[0].startswith("mmme features: error: mmme features needs the [analysis] extra")
    assert "missing: mne-bids" in err[0]


def test_cli_a_missing_module_of_no_extra_is_still_one_line(monkeypatch, capsys):
    def features(args):
        raise ModuleNotFoundError("No module named 'mmmelab.gone'", name="mmmelab.gone")

    monkeypatch.setattr("mmmelab.analysiscli.features", features)
    assert cli.main(["features", "x", "--out", "y"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected ModuleNotFoundError" in err[0]


def test_cli_demo_without_sim_says_so_before_recording(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(extras.EXTRAS, "sim", {"no_such_module_xyz": "no-such-dist"})
    code = cli.main(["demo", "--headless", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR
    assert "[sim]" in err[-1] and "simulated lab" in err[-1]
    assert not any(tmp_path.iterdir())  # nothing was recorded
