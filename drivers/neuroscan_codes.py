"""The codes of Neuroscan's two network framings, as devices.md documents them.

Curry's NetStreaming server and Acquire's TCP server share the ``CTRL``/``DATA``
vocabulary but not its numbers; ``drivers/neuroscan.py`` speaks both. The
simulators in ``hardware_mocks/`` keep tables of their own, so that a wrong code
here shows up against them.
"""

from __future__ import annotations

import enum


class CurryRequest(enum.IntEnum):
    """Curry NetStreaming: a client's ``CTRL`` request (code ``CTRL_FromClient`` = 2)."""

    VERSION = 1
    CHANNEL_INFO = 3
    BASIC_INFO_ACQ = 6
    STREAMING_START = 8
    STREAMING_STOP = 9


class CurryData(enum.IntEnum):
    """Curry NetStreaming: the code of a ``DATA`` packet."""

    INFO = 1  # its request field is a CurryInfo
    EEG = 2  # its request field is the block type: 1 float32 (others compressed)
    EVENTS = 3
    IMPEDANCE = 4


class CurryInfo(enum.IntEnum):
    """Curry NetStreaming: the info type of a ``Data_Info`` packet."""

    VERSION = 1
    BASIC_INFO = 2
    CHANNEL_INFO = 4


CURRY_FROM_CLIENT = 2  # the code of every CTRL packet a client sends
CURRY_FLOAT32 = 1  # the Data_Eeg block type this driver reads


class AcquireCode(enum.IntEnum):
    """Neuroscan Acquire: the code of a ``CTRL`` packet (its request is one of the next)."""

    GENERAL = 1  # AcquireGeneral
    SERVER = 2  # AcquireServer: the amplifier
    CLIENT = 3  # AcquireClient: the data stream


class AcquireGeneral(enum.IntEnum):
    """Acquire's general control codes (``CTRL`` packets, code 1)."""

    REQUEST_FOR_VERSION = 1
    CLOSING_UP = 2
    SERVER_DISCONNECTED = 3


class AcquireServer(enum.IntEnum):
    """Acquire's server control codes (``CTRL`` packets, code 2)."""

    START_ACQUISITION = 1
    STOP_ACQUISITION = 2
    START_IMPEDANCE = 3
    CHANGE_SETUP = 4
    DC_CORRECTION = 5


class AcquireClientRequest(enum.IntEnum):
    """Acquire's client requests (``CTRL`` packets, code 3)."""

    REQUEST_EDF_HEADER = 1
    REQUEST_AST_FILE = 2
    REQUEST_START_DATA = 3
    REQUEST_STOP_DATA = 4
    REQUEST_BASIC_INFO = 5


class AcquireData(enum.IntEnum):
    """Neuroscan Acquire: the code of a ``DATA`` packet."""

    INFO = 1  # request 3: BasicInfo (1 version, 2 EDF header)
    EEG = 2  # request: 1 16-bit counts, 2 32-bit counts


ACQUIRE_BASIC_INFO = 3  # the request field of the Data InfoBlock that carries BasicInfo
ACQUIRE_32_BIT = 2  # the request field of a 32-bit EEG data packet
