"""``python -m mmmelab`` is the same as the ``mmme`` command."""

from mmmelab.cli import main

raise SystemExit(main())
