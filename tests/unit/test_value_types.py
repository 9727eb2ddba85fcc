"""The typed contracts store exactly the values the session format always stored.

Sessions recorded before these enums existed must read the same, and readers
written against the format (analysts' scripts, ``mmme check``) must keep working:
every value here is part of the format and may never change.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmmelab.drivers import neuroscan_codes as nc
from mmmelab.storage.consent import face_public
from mmmelab.storage.signals import FAULT_DTYPE
from mmmelab.streams import (
    AudioState,
    ConsentLevel,
    FaultKind,
    StimulusKind,
    StreamKind,
    SyncState,
)
from mmmelab.sync.align import AlignMethod

pytestmark = pytest.mark.timeout(30)


def test_stored_values_are_the_format_s():
    assert {k.value for k in StreamKind} == {"camera", "eeg", "physio", "lsl", "markers"}
    assert {k.name: k.value for k in StimulusKind} == {
        "CLIP": 1, "NEUTRAL": 2, "DISPLAY_CHECK": 3}  # fmt: skip
    assert [int(a) for a in AudioState] == [0, 1, 2, 3]
    assert [int(c) for c in ConsentLevel] == [1, 2]
    assert {s.value for s in SyncState} == {"waiting", "ok", "no_triggers", "residual_high"}
    assert {m.value for m in AlignMethod} == {"triggers", "host_time", "lsl", "mixed", "none"}
    assert {
        "gap", "dropped", "malformed", "resync", "disconnect", "reconnect", "restart",
        "stall", "lost", "recovered", "event", "clock", "clock_reset", "sync", "warning",
        "fatal", "listener_error", "writer_log", "writer_restart", "volume_lost",
    } == {k.value for k in FaultKind}  # fmt: skip


def test_enums_go_into_json_and_hdf5_rows_as_their_plain_values():
    row = np.zeros(1, FAULT_DTYPE)
    row["kind"] = FaultKind.VOLUME_LOST.encode()
    assert row["kind"][0] == b"volume_lost"
    assert json.loads(json.dumps({"k": StreamKind.EEG, "c": ConsentLevel.PUBLIC})) == {
        "k": "eeg",
        "c": 1,
    }
    # values read back from older files compare equal to the members
    assert "gap" == FaultKind.GAP and SyncState("ok") is SyncState.OK


def test_what_each_kind_means():
    assert StreamKind.of_device("eeg") is StreamKind.EEG
    assert StreamKind.of_device("eyetracker") is StreamKind.LSL
    informational = {k for k in FaultKind if k.informational}
    assert FaultKind.GAP not in informational and FaultKind.FATAL not in informational
    assert FaultKind.VOLUME_LOST in informational  # the others took its frames
    assert {s for s in SyncState if s.bad} == {SyncState.NO_TRIGGERS, SyncState.RESIDUAL_HIGH}
    # a session without a level, or with an unknown one, is not public
    assert face_public(ConsentLevel.PUBLIC) and face_public(1)
    assert not face_public(ConsentLevel.RESEARCH_ONLY) and not face_public(0)


def test_neuroscan_codes_are_the_documented_ones():
    """devices.md: Acquire's CTRL 3/5 RequestBasicInfo, 2/1 StartAcquisition, 2/3
    StartImpedance, 3/3 RequestStartData, 3/4 RequestStopData, 1/2 ClosingUp; Curry's
    requests 1/3/6/8/9 and DATA codes 1-4."""
    assert (nc.AcquireCode.CLIENT, nc.AcquireClientRequest.REQUEST_BASIC_INFO) == (3, 5)
    assert (nc.AcquireCode.SERVER, nc.AcquireServer.START_ACQUISITION) == (2, 1)
    assert (nc.AcquireCode.SERVER, nc.AcquireServer.START_IMPEDANCE) == (2, 3)
    assert nc.AcquireClientRequest.REQUEST_START_DATA == 3
    assert nc.AcquireClientRequest.REQUEST_STOP_DATA == 4
    assert (nc.AcquireCode.GENERAL, nc.AcquireGeneral.CLOSING_UP) == (1, 2)
    assert [int(r) for r in nc.CurryRequest] == [1, 3, 6, 8, 9]
    assert [int(d) for d in nc.CurryData] == [1, 2, 3, 4]
    assert [int(i) for i in nc.CurryInfo] == [1, 2, 4]
