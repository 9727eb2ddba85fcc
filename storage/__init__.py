"""Ring buffers, frame and signal writers, the session format, recovery and exports.

``open_session(path)`` is the single reading API the analysis uses.
"""

from mmmelab.storage.session import CameraStream, Session, SignalStream, open_session

__all__ = ["CameraStream", "Session", "SignalStream", "open_session"]
