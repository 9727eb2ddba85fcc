"""The optional parts of the installation, and one message when one is missing.

``pip install mmme-lab`` installs what a recording PC needs: the engine, the
drivers, the console and the participant's windows, the rig checks. The rest is
in extras (``pyproject.toml``):

``sim``       the simulated lab (NeuroKit2's physiology models)
``analysis``  the offline analyses, the coding tool's physiology tracks, the
              importers and the exports (NeuroKit2, pandas, OpenCV, mne-bids, ...)
``models``    the deep recognisers (PyTorch, braindecode)
``dev``       the tests and the linters

:func:`require` is called where a part starts (the simulated lab is started in
one place, :mod:`mmmelab.acquisition.simulation`); :func:`missing_error` turns a
module that failed to import into the CLI's one-line error naming its extra.
"""

from __future__ import annotations

from importlib.util import find_spec

from mmmelab.errors import LabError

# import name -> distribution name, per extra (only what the base install lacks)
EXTRAS: dict[str, dict[str, str]] = {
    "sim": {"neurokit2": "neurokit2"},
    "analysis": {
        "neurokit2": "neurokit2",
        "pandas": "pandas",
        "sklearn": "scikit-learn",
        "joblib": "joblib",
        "openpyxl": "openpyxl",
        "cv2": "opencv-contrib-python-headless",
        "mne_bids": "mne-bids",
        "pybv": "pybv",
        "mne_icalabel": "mne-icalabel",
        "onnxruntime": "onnxruntime",
        "picard": "python-picard",
        "curryreader": "curryreader",
        "bioread": "bioread",
    },
    "models": {"torch": "torch", "braindecode": "braindecode"},
}

SETUP_FLAG = {"sim": "--sim", "analysis": "--analysis", "models": "--models"}


class MissingExtraError(LabError):
    """A part of mmme-lab was asked for whose optional packages are not installed."""

    def __init__(self, extra: str, purpose: str, missing: list[str]) -> None:
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{purpose} needs the [{extra}] extra, which is not installed "
            f"(missing: {', '.join(missing)}): pip install 'mmme-lab[{extra}]', "
            f"or ./scripts/setup.sh {SETUP_FLAG.get(extra, '--dev')} in a clone"
        )


def missing(extra: str) -> list[str]:
    """The distributions of ``extra`` that cannot be imported here (cheap: nothing
    is imported, only looked up)."""
    return [dist for module, dist in EXTRAS[extra].items() if find_spec(module) is None]


def require(extra: str, purpose: str) -> None:
    """Raise :class:`MissingExtraError` (a :class:`~mmmelab.errors.LabError`: one line
    and exit code 2 at the CLI) unless every package of ``extra`` is installed.
    ``purpose`` says what needed it ("the simulated lab")."""
    absent = missing(extra)
    if absent:
        raise MissingExtraError(extra, purpose, absent)


def extra_for(module: str | None) -> str | None:
    """The extra that provides the top-level package of ``module`` (the ``name`` of
    a ``ModuleNotFoundError``), or None when no extra does. NeuroKit2 is in both
    ``sim`` and ``analysis``; outside the simulated lab (which calls :func:`require`
    first) it is the analyses that need it."""
    top = (module or "").split(".")[0]
    for extra in ("models", "analysis", "sim"):
        if top in EXTRAS[extra]:
            return extra
    return None


def missing_error(module: str | None, purpose: str) -> MissingExtraError | None:
    """The error to show for a ``ModuleNotFoundError`` of ``module`` met while doing
    ``purpose``, or None when that module belongs to no extra (a real bug)."""
    extra = extra_for(module)
    if extra is None:
        return None
    top = str(module).split(".")[0]
    return MissingExtraError(extra, purpose, [EXTRAS[extra][top]])
