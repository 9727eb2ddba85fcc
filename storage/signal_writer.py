"""The ``signals.h5`` writer process: ``python -m mmmelab.storage.signal_writer``.

Reads pickled messages from stdin: first ``("open", path, specs, logs)``, then
lists of rows (see :class:`mmmelab.storage.signals.SignalFile`).
Prints ``ready`` once the file and its datasets exist. At the end of its input -
the recorder closed the pipe, or died - it writes what it has, flushes, closes
the file and exits. Ctrl-C in the terminal is left to the recorder, which stops
the session and then closes the pipe.
"""

from __future__ import annotations

import logging
import pickle
import signal
import sys
from pathlib import Path

from mmmelab.storage.signals import H5Writer

logger = logging.getLogger("mmmelab.storage.signal_writer")


def main() -> int:
    """The signal writer's process: read the specs from stdin, say ready, then write the
    rows it is sent until the pipe closes."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # the recorder ends it by closing the pipe
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    source = sys.stdin.buffer
    try:
        _, path, specs, logs = pickle.load(source)
        writer = H5Writer(Path(path), specs, logs)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        print(f"error: {exc}", flush=True)  # noqa: T201 - stdout is the pipe to the parent
        return 1
    print("ready", flush=True)  # noqa: T201
    code = 0
    try:
        while True:
            try:
                items = pickle.load(source)
            except EOFError:
                break
            writer.write(items)
            writer.flush()  # after every batch (a few a second): readers see it at once
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        logger.error("signal writer failed; signals after this point are lost: %s", exc)
        code = 1
    except Exception:  # reported, then the file is closed as far as it goes
        logger.exception("signal writer failed unexpectedly; signals after this point are lost")
        code = 1
    finally:
        try:
            writer.close()
        except (OSError, RuntimeError) as exc:  # e.g. the disk is still full
            logger.error("signals.h5 could not be closed cleanly: %s", exc)
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
