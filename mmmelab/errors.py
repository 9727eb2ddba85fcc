"""The one exception hierarchy of mmme-lab.

Every layer raises these; vendor error codes are translated into them at the
driver boundary so that callers never see a vendor's own exception type.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error mmme-lab raises on purpose."""


class ConfigError(LabError):
    """A configuration or protocol file is missing, unreadable or invalid.

    Parameters
    ----------
    path : str
        The file that holds the bad value.
    key : str
        Dotted key of the bad value (``devices.camera.fps``), or ``""`` for the file.
    problem : str
        What is wrong and what is allowed.
    """

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class DeviceError(LabError):
    """A device refused a request or answered with an error."""

    def __init__(self, device: str, message: str, code: int | None = None) -> None:
        self.device = device
        self.code = code
        text = f"{device}: {message}"
        if code is not None:
            text += f" (device error {code})"
        super().__init__(text)


class DeviceTimeoutError(DeviceError):
    """A device did not answer within its timeout."""


class DeviceLostError(DeviceError):
    """A device disconnected or stopped delivering while it was in use."""


class SessionFormatError(LabError):
    """A session folder is missing, corrupt or of an unknown format version."""
