"""Simulated XIMEA camera behind the official ``xiapipy`` module (see ``library``)."""

from mmmelab.hardware_mocks.ximea.camera import SimulatedCamera
from mmmelab.hardware_mocks.ximea.library import SimulatedM3Api, install

__all__ = ["SimulatedCamera", "SimulatedM3Api", "install"]
