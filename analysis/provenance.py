"""What every analysis output records about where it came from: input hashes and
the versions of the packages that made it."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from typing import Any

from mmmelab import __version__
from mmmelab.storage.checksum import sha256

__all__ = ["jsonable", "sha256", "versions"]


def versions(packages: Iterable[str]) -> dict[str, str]:
    """mmme-lab's version and each installed distribution's ("not installed" if absent)."""
    out = {"mmme-lab": __version__}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def jsonable(obj: Any) -> Any:
    """``json.dumps``'s ``default`` for analysis outputs: numpy scalars and arrays,
    dataclasses, anything else as its text."""
    import dataclasses

    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)
