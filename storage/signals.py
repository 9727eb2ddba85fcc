"""EEG, physiology, markers and faults in one HDF5 file, written crash-safe.

``signals.h5`` layout (one group per signal stream)::

    /<stream>/data        (n_samples, n_channels) float32, physical units
    /<stream>/blocks      one row per received block: first_sample (device sample
                          index), count, host_time (master clock at receipt)
    /<stream>/<aux>       per-sample auxiliary arrays, e.g. trigger (uint16 event
                          word) or digital (uint8 levels, one column per line)
    /markers/log          every emitted event code (see mmmelab.sync.bus.MarkerRecord)
    /faults/log           every drop, gap, fault and fallback: time, stream, kind, detail

The file is written in HDF5 SWMR mode by its own process (``python -m
mmmelab.storage.signal_writer``) and flushed after every batch (``WRITE_BATCH_S``).
h5py holds the GIL in its calls, so writing in the recorder's process would stall
the recorder and GUI threads now and then; in its own process it cannot. The
recorder side queues rows and a feeder thread (``signal-writer``) sends them in
batches through a pipe. When the recorder dies, the pipe closes and the writer
writes what it has, flushes and exits; a reader opening the file with
``swmr=True`` sees a consistent file at any moment.
"""

from __future__ import annotations

import logging
import pickle
import queue
import select
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmmelab.streams import AuxSpec, FaultKind, SignalLayout, StreamKind

logger = logging.getLogger(__name__)

WRITE_BATCH_S = 0.25  # the feeder sends at most four batches a second
START_TIMEOUT_S = 60.0  # the writer process imports h5py and creates the file
MAX_FAULTS_KEPT = 5000  # fault rows also kept in memory, for the manifest

BLOCK_DTYPE = np.dtype([("first_sample", "<i8"), ("count", "<u4"), ("host_time", "<f8")])
MARKER_DTYPE = np.dtype(
    [
        ("seq", "<u4"),
        ("code", "<u2"),
        ("t_request", "<f8"),
        ("t_on", "<f8"),
        ("t_off", "<f8"),
        ("ttl_ok", "u1"),
        ("label", "S64"),
    ]
)
FAULT_DTYPE = np.dtype(
    [("host_time", "<f8"), ("stream", "S16"), ("kind", "S24"), ("count", "<i8"), ("detail", "S160")]
)


@dataclass(frozen=True)
class SignalSpec:
    """What one signal stream looks like in the session: its device's layout, named."""

    name: str
    kind: StreamKind
    rate_hz: float
    channels: tuple[str, ...]
    units: str
    aux: tuple[AuxSpec, ...] = ()
    device: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, layout: SignalLayout, device: dict[str, Any]) -> SignalSpec:
        """The stream device ``name`` delivers (``layout``, from its connect); ``device``
        is its description for the manifest, every value as text."""
        kind = StreamKind.of_device(name)
        info = {k: str(v) for k, v in device.items()}
        return cls(name, kind, layout.rate_hz, layout.channels, layout.units, layout.aux, info)


@dataclass
class _Block:
    stream: str
    first_sample: int
    data: np.ndarray
    host_time: float
    aux: dict[str, np.ndarray]


def _string(value: str, size: int) -> bytes:
    return value.encode("utf-8", "replace")[:size]


class H5Writer:
    """The HDF5 side (runs in the writer process): creates every dataset, then appends.

    All datasets are created up front (SWMR forbids creating them later).
    """

    def __init__(self, path: Path, specs: list[SignalSpec], logs: dict[str, np.dtype]) -> None:
        self.specs = {s.name: s for s in specs}
        self._file = h5py.File(path, "w", libver="latest")
        for spec in specs:
            self._create_stream(spec)
        for name, dtype in (("markers", MARKER_DTYPE), ("faults", FAULT_DTYPE), *logs.items()):
            grp = self._file.create_group(name)
            grp.create_dataset("log", shape=(0,), maxshape=(None,), chunks=(256,), dtype=dtype)
        self._file.swmr_mode = True

    def _create_stream(self, spec: SignalSpec) -> None:
        grp = self._file.create_group(spec.name)
        n_ch = len(spec.channels)
        rows = max(64, int(spec.rate_hz))
        grp.create_dataset(
            "data", shape=(0, n_ch), maxshape=(None, n_ch), chunks=(rows, n_ch), dtype="<f4"
        )
        grp.create_dataset("blocks", shape=(0,), maxshape=(None,), chunks=(256,), dtype=BLOCK_DTYPE)
        for aux in spec.aux:
            grp.create_dataset(
                aux.name,
                shape=(0, aux.width),
                maxshape=(None, aux.width),
                chunks=(rows, aux.width),
                dtype=aux.dtype,
            )
        grp.attrs["kind"] = str(spec.kind)
        grp.attrs["rate_hz"] = spec.rate_hz
        grp.attrs["channels"] = np.array(spec.channels, dtype=h5py.string_dtype())
        grp.attrs["units"] = spec.units
        for key, value in spec.device.items():
            grp.attrs[f"device_{key}"] = value

    def write(self, items: list[Any]) -> None:
        blocks: dict[str, list[_Block]] = defaultdict(list)
        logs: dict[str, list[np.ndarray]] = defaultdict(list)
        for item in items:
            if isinstance(item, _Block):
                blocks[item.stream].append(item)
            else:
                logs[item[0]].append(item[1])
        for stream, group in blocks.items():
            self._append_blocks(stream, group)
        for name, rows in logs.items():
            self._extend(self._file[name]["log"], np.concatenate(rows))

    @staticmethod
    def _extend(ds: h5py.Dataset, rows: np.ndarray) -> None:
        n = ds.shape[0]
        ds.resize(n + len(rows), axis=0)
        ds[n:] = rows

    def _append_blocks(self, stream: str, group: list[_Block]) -> None:
        grp = self._file[stream]
        data = np.concatenate([b.data for b in group]).astype("<f4", copy=False)
        self._extend(grp["data"], data)
        table = np.array(
            [(b.first_sample, len(b.data), b.host_time) for b in group], dtype=BLOCK_DTYPE
        )
        self._extend(grp["blocks"], table)
        for aux in self.specs[stream].aux:
            parts = [b.aux[aux.name].reshape(len(b.data), aux.width) for b in group]
            self._extend(grp[aux.name], np.concatenate(parts).astype(aux.dtype, copy=False))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()


class SignalFile:
    """Writer of ``signals.h5``. ``append``/``marker``/``fault``/``log`` may be called from
    any thread; they only queue. The file itself is written by a separate process.

    Raises ``OSError`` when the writer process cannot create the file.
    """

    def __init__(
        self,
        path: Path,
        specs: list[SignalSpec],
        logs: dict[str, np.dtype] | None = None,
    ) -> None:
        self.path = Path(path)
        self.specs = {s.name: s for s in specs}
        self.logs = dict(logs or {})
        self.samples: dict[str, int] = defaultdict(int)
        self.error: str | None = None
        self.fault_rows: list[dict[str, Any]] = []
        # its own session: a Ctrl-C in the terminal reaches only the recorder, which
        # stops the session and then closes the pipe
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mmmelab.storage.signal_writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.log_lines: list[str] = []
        self._log_thread = threading.Thread(
            target=self._forward_log, name="signal-writer-log", daemon=True
        )
        self._log_thread.start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._pipe = self._proc.stdin
        self._send(("open", str(self.path), specs, self.logs))
        self._await_ready()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._feed, name="signal-writer", daemon=True)
        self._thread.start()

    def _send(self, message: Any) -> None:
        pickle.dump(message, self._pipe, protocol=pickle.HIGHEST_PROTOCOL)
        self._pipe.flush()

    def _forward_log(self) -> None:
        """The writer process's stderr to this process's log (and ``log_lines``)."""
        err = self._proc.stderr
        assert err is not None
        for raw in iter(err.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line:
                logger.warning("%s", line)
                if len(self.log_lines) < 200:
                    self.log_lines.append(line)
        err.close()

    @property
    def writer_alive(self) -> bool:
        return self._proc.poll() is None and self._thread.is_alive()

    def _await_ready(self) -> None:
        out = self._proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], START_TIMEOUT_S)
        line = out.readline().decode(errors="replace").strip() if ready else ""
        if line != "ready":
            self._proc.kill()
            self._proc.wait(5.0)
            raise OSError(f"{self.path}: the signal writer could not start ({line or 'timeout'})")

    # ------------------------------------------------------------ producers

    def append(
        self,
        stream: str,
        first_sample: int,
        data: np.ndarray,
        host_time: float,
        aux: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Queue one block: ``data`` is (n, channels); ``first_sample`` the device index."""
        self.samples[stream] += len(data)
        self._queue.put(_Block(stream, first_sample, data, host_time, aux or {}))

    def marker(
        self,
        seq: int,
        code: int,
        label: str,
        t_request: float,
        t_on: float,
        t_off: float,
        ttl_ok: bool,
    ) -> None:
        row = np.array(
            [(seq, code, t_request, t_on, t_off, ttl_ok, _string(label, 64))], dtype=MARKER_DTYPE
        )
        self._queue.put(("markers", row))

    def fault(
        self, host_time: float, stream: str, kind: FaultKind, count: int, detail: str
    ) -> None:
        row = np.array(
            [(host_time, _string(stream, 16), _string(kind, 24), count, _string(detail, 160))],
            dtype=FAULT_DTYPE,
        )
        if len(self.fault_rows) < MAX_FAULTS_KEPT:  # for the manifest, if this file fails
            self.fault_rows.append(
                {"host_time": host_time, "stream": stream, "kind": kind, "count": count,
                 "detail": detail}
            )  # fmt: skip
        self._queue.put(("faults", row))

    def log(self, name: str, row: np.ndarray) -> None:
        """Append rows to one of the tables declared in ``logs``."""
        if name not in self.logs:
            raise KeyError(f"no log table {name!r} in {self.path.name}")
        self._queue.put((name, np.asarray(row, dtype=self.logs[name]).reshape(-1)))

    def wait_sent(self, max_items: int = 0, timeout_s: float = 60.0) -> bool:
        """Wait until at most ``max_items`` are queued (not yet piped to the writer).

        For producers faster than real time (``mmme simulate``): ``close`` gives the
        feeder a bounded time, so a large backlog must be sent before it. False on timeout.
        """
        deadline = time.monotonic() + timeout_s
        while self._queue.qsize() > max_items:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    # ------------------------------------------------------------ feeder thread

    def _feed(self) -> None:
        """Batch the queue into the pipe (a pipe write releases the GIL)."""
        stop = False
        while not stop:
            items = [self._queue.get()]  # close() puts None, so this always ends
            time.sleep(WRITE_BATCH_S)  # collect a batch
            try:
                while True:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if None in items:
                items = [i for i in items if i is not None]
                stop = True
            try:
                if items:
                    self._send(items)
            except (OSError, ValueError) as exc:  # the writer process is gone
                self.error = f"the signal writer process stopped ({exc}); later signals are lost"
                logger.error("%s", self.error)
                return

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued, let the writer flush and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        try:
            self._pipe.close()  # end of input: the writer flushes, closes and exits
        except OSError:
            pass
        try:
            code = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.error("signal writer did not finish within %.1f s", timeout_s)
            self._proc.kill()
            code = self._proc.wait(5.0)
        if code != 0 and self.error is None:
            self.error = f"the signal writer process ended with exit code {code}"
            logger.error("%s", self.error)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log_thread.join(2.0)


def open_signals(path: Path) -> h5py.File:
    """Open ``signals.h5`` for reading (SWMR), whether or not its writer finished cleanly.

    Sessions are opened through :func:`mmmelab.storage.open_session`, which also
    copes with cut and damaged files without hanging (``mmmelab.storage.h5salvage``).
    """
    return h5py.File(path, "r", libver="latest", swmr=True)
