"""The one place in the product that starts the simulated lab.

Nothing else in the product imports :mod:`mmmelab.hardware_mocks`; drivers never
know whether they talk to a simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmmelab.config import LabConfig


def start_simulated_lab(
    lab: LabConfig,
    clock: Callable[[], float],
    seed: int = 0,
    clocks: dict[str, Any] | None = None,
    camera_sensor_limited: bool = True,
) -> Any:
    """Start simulators for every device the lab marks ``simulate = true``.

    ``camera_sensor_limited=False`` (benchmarks only) lets the simulated camera run
    faster than its sensor's readout allows, so that the pipeline's limit is measured.

    Returns a ``SimulatedLab`` (context manager with ``configured(lab)``,
    ``ground_truth()`` and ``close()``).
    """
    from mmmelab.hardware_mocks.lab import ClockModel, SimulatedLab

    models = {
        k: v if isinstance(v, ClockModel) else ClockModel(**v) for k, v in (clocks or {}).items()
    }
    return SimulatedLab(
        lab, clock, clocks=models, seed=seed, camera_sensor_limited=camera_sensor_limited
    )
