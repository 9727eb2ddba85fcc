"""``mmme bench camera --volumes DIR1,DIR2[,...]``: the disk array, measured.

Three parts, each through the real pipeline (XIMEA's xiapipy against the
simulated camera, the frame ring, one writer process per volume):

1. 150 fps at 2040x1080 for ``seconds``, striped over the volumes: drops, and
   each volume's writer MB/s;
2. the writers' capacity: the ring refilled as fast as they drain it, all the
   volumes at once, against the raw direct-I/O bandwidth of the same volumes
   written at once (threads), and the same two figures for the first volume
   alone - so ``striped_to_one_writer`` says what striping costs (1.0: nothing;
   each run starts on a settled disk);
3. a fill run: the first volume and a small tmpfs that fills within seconds (the
   bench mounts it; it needs the right to), recorded until the tmpfs has left the
   stripe and ``seconds`` more: the fault, and how many frames were lost.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mmmelab.bench import Progress, _quiet, disk_direct_mb_s, run_camera, writer_capacity
from mmmelab.errors import LabError
from mmmelab.storage.frames import frame_stride

FILL_TMPFS = "1g"  # fills in about 6 s at half of 150 fps x 2040x1080


def parallel_direct_mb_s(folders: list[Path], total_bytes: int, block: int) -> float:
    """Raw direct sequential write bandwidth of ``folders`` written at the same time,
    ``total_bytes`` in all (an equal share each, one thread per folder)."""
    done: list[float] = []
    barrier = threading.Barrier(len(folders) + 1)

    def one(folder: Path) -> None:
        barrier.wait()
        done.append(disk_direct_mb_s(folder, total_bytes // len(folders), block))

    threads = [threading.Thread(target=one, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return total_bytes / (time.monotonic() - t0) / 1e6


def bench_volumes(
    volumes: list[Path], seconds: float = 60.0, progress: Progress = _quiet
) -> dict[str, Any]:
    for v in volumes:
        if not v.is_dir():
            raise LabError(f"--volumes: {v} is not a folder")
    if len(volumes) < 2:
        raise LabError("--volumes needs two or more folders, comma-separated")
    work = [Path(tempfile.mkdtemp(prefix="mmme-bench-", dir=v)) for v in volumes]
    chunk_dirs = [w / "camera" for w in work]
    stride = frame_stride(2040, 1080)
    try:
        progress(f"150 fps for {seconds:g} s striped over {len(volumes)} volumes ...")
        target = run_camera(chunk_dirs[0], 150.0, seconds, volumes=chunk_dirs[1:])
        _clear(chunk_dirs)
        capacity = _capacity(chunk_dirs, work, stride, progress)
        progress(f"fill run: {work[0]} and a {FILL_TMPFS} tmpfs that fills ...")
        fill = _fill_run(chunk_dirs[0], work[0] / "tmpfs", seconds / 4, progress)
    finally:
        for w in work:
            shutil.rmtree(w, ignore_errors=True)
    return {
        "fps_target": 150.0,
        "volumes": [str(v) for v in volumes],
        "seconds": round(target["seconds"], 2),
        "frames": target["frames"],
        "dropped": target["dropped"],
        "written": target["written"],
        "ring_high_water_frac": round(target["ring_high_water_frac"], 4),
        "cpu_percent": round(target["cpu_percent"], 1),
        "direct_io": target["direct_io"],
        "per_volume_at_target": target["volumes"],
        **capacity,
        "fill": fill,
        "faults": target["faults"],
    }


def _clear(folders: list[Path]) -> None:
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)


def _capacity(
    chunk_dirs: list[Path], work: list[Path], stride: int, progress: Progress
) -> dict[str, Any]:
    """Best of three interleaved runs of: the striped writers, the volumes' raw direct
    bandwidth at once, one writer on the first volume, that volume's raw bandwidth."""
    size = 2 * 1024**3
    runs: dict[str, list[float]] = {"striped": [], "disks": [], "one": [], "disk0": []}
    per_volume: list[list[float]] = []
    for i in range(3):
        progress(f"writer capacity and raw disk bandwidth ({i + 1}/3) ...")
        each: list[float] = []
        _settle()
        runs["striped"].append(
            writer_capacity(chunk_dirs[0], size, volumes=chunk_dirs[1:], per_volume=each)
        )
        per_volume.append(each)
        _clear(chunk_dirs)
        _settle()
        runs["disks"].append(parallel_direct_mb_s(work, size, 8 * stride))
        _settle()
        runs["one"].append(writer_capacity(chunk_dirs[0], size))
        _clear(chunk_dirs)
        _settle()
        runs["disk0"].append(disk_direct_mb_s(work[0], size, 8 * stride))
    best = {k: max(v) for k, v in runs.items()}
    at = runs["striped"].index(best["striped"])
    solo = []
    for f in work:  # each volume's raw bandwidth alone
        _settle()
        solo.append(disk_direct_mb_s(f, size // 2, 8 * stride))
    striped_ratio = best["striped"] / best["disks"]
    one_ratio = best["one"] / best["disk0"]
    return {
        "writer_mb_s": round(best["striped"], 1),
        "disk_direct_mb_s": round(best["disks"], 1),
        "striped_writer_to_disk_ratio": round(striped_ratio, 3),
        "one_writer_mb_s": round(best["one"], 1),
        "one_disk_direct_mb_s": round(best["disk0"], 1),
        "one_writer_to_disk_ratio": round(one_ratio, 3),
        "striped_to_one_writer": round(striped_ratio / one_ratio, 3),
        "striped_writer_to_one_writer_mb_s": round(best["striped"] / best["one"], 3),
        # each volume's raw bandwidth measured alone, summed (on one disk: counted twice)
        "summed_disk_direct_mb_s": round(sum(solo), 1),
        "summed_writer_to_summed_disk_ratio": round(best["striped"] / sum(solo), 3),
        "per_volume": [
            {"folder": str(f), "writer_mb_s": round(w, 1), "disk_direct_mb_s": round(d, 1)}
            for f, w, d in zip(work, per_volume[at], solo, strict=True)
        ],
        "runs_mb_s": {k: [round(x, 1) for x in v] for k, v in runs.items()},
    }


def _settle(pause_s: float = 3.0) -> None:
    """Let the disk finish what the last run left (a cloud disk's cache flushing into the
    next run is the largest error in these figures)."""
    os.sync()
    time.sleep(pause_s)


def _fill_run(first: Path, mnt: Path, seconds: float, progress: Progress) -> dict[str, Any]:
    from mmmelab.faultcases import mount_small_disk, unmount

    refused = mount_small_disk(mnt, FILL_TMPFS)
    if refused:
        progress(f"fill run skipped: cannot mount a tmpfs ({refused})")
        return {"skipped": refused}
    try:
        r = run_camera(first, 150.0, max(seconds, 5.0), volumes=[mnt / "camera"],
                       until=lambda pipe: bool(pipe.writer.lost_volumes))  # fmt: skip
    finally:
        unmount(mnt)
        shutil.rmtree(first, ignore_errors=True)
    lost = [d for k, d in zip(r["faults"], r["fault_details"], strict=True) if k == "volume_lost"]
    return {
        "seconds": round(r["seconds"], 2),
        "frames": r["frames"],
        "written": r["written"],
        "dropped": r["dropped"],
        "frames_lost": r["frames"] - r["written"],
        "volume_lost_faults": lost,
        "per_volume": r["volumes"],
        "ring_high_water_frac": round(r["ring_high_water_frac"], 4),
    }
