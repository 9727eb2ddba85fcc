"""Prove the extras on the built wheel: a fresh environment holding exactly what
``pip install mmme-lab`` (requirements/rig.txt) brings, and one with ``[sim]``
(requirements/sim.txt), each with the wheel installed on its own.

Without ``[sim]`` the recording side imports, and the demo on the simulated lab and
an analysis refuse in one line naming the extra (exit code 2); with ``[sim]`` the
demo records a session. The environments are made offline: every locked package is
linked from this clone's .venv (which must hold the locked version), so nothing is
downloaded. Run by scripts/check_wheel.sh:

    python scripts/extras_check.py WHEEL WORKDIR
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parents[1]


def locked(lock: Path) -> dict[str, str]:
    """name -> version of the lock's packages that apply to this Python."""
    out: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not re.match(r"^[A-Za-z0-9]", line):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            out[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return out


def make_env(root: Path, lock: Path, wheel: Path) -> Path:
    """A venv at ``root`` whose site-packages links the lock's packages from the
    running interpreter's environment, with ``wheel`` installed (no dependencies)."""
    venv.EnvBuilder(with_pip=False, clear=True).create(root)
    py = root / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    for name, version in locked(lock).items():
        if name == "mmme-lab":
            continue
        dist = md.distribution(name)
        if dist.version != version:
            sys.exit(f"extras check: .venv has {name} {dist.version}, the lock {version}")
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
    )
    return py


def run(py: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mmmelab ARGS`` in that environment, without a display."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYTHONPATH")}
    return subprocess.run(
        [py, "-m", "mmmelab", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def expect_refusal(proc: subprocess.CompletedProcess[str], extra: str, what: str) -> None:
    """Exit code 2 and one line naming ``[extra]``, or this check fails."""
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 2 or len(lines) != 1 or f"[{extra}]" not in lines[0]:
        sys.exit(
            f"extras check: {what} without [{extra}]: exit {proc.returncode}, stderr:\n"
            f"{proc.stderr}"
        )
    print(f"  {what}: {lines[0]}")


def main() -> None:
    """The base environment refuses the simulated lab and an analysis; [sim] records."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    wheel, work = Path(sys.argv[1]), Path(sys.argv[2])
    print("== base install (requirements/rig.txt), no extras")
    py = make_env(work / "rig", HERE / "requirements" / "rig.txt", wheel)
    probe = (
        "import importlib.util as u, mmmelab.acquisition.engine, mmmelab.acquisition.rigcheck,"
        " mmmelab.acquisition.service, mmmelab.gui.app, mmmelab.drivers.neuroscan;"
        " assert u.find_spec('neurokit2') is None and u.find_spec('pandas') is None"
    )
    proc = subprocess.run([py, "-c", probe], cwd=work, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"extras check: the base install does not import:\n{proc.stderr}")
    print("  the recorder, the console, the service and the drivers import")
    expect_refusal(run(py, "demo", "--headless", "--out", "s", cwd=work), "sim", "mmme demo")
    expect_refusal(
        run(py, "simulate", "s", "--participants", "1", cwd=work), "sim", "mmme simulate"
    )
    features = run(py, "features", "nowhere", "--out", "f", cwd=work)
    expect_refusal(features, "analysis", "mmme features")
    print("== with [sim] (requirements/sim.txt)")
    py = make_env(work / "sim", HERE / "requirements" / "sim.txt", wheel)
    proc = run(py, "demo", "--headless", "--out", "sessions", cwd=work)
    if proc.returncode != 0 or "status:  complete" not in proc.stdout:
        sys.exit(f"extras check: the demo with [sim] failed ({proc.returncode}):\n"
                 f"{proc.stdout}\n{proc.stderr}")  # fmt: skip
    print("  mmme demo --headless: " + proc.stdout.splitlines()[1].strip())


if __name__ == "__main__":
    main()
