"""``python -m mmmelab`` is the same as the ``mmme`` command."""

from mmmelab.cli import main

# Guarded: the frame-writer process is started with "spawn", which imports the
# parent's main module again.
if __name__ == "__main__":
    raise SystemExit(main())
