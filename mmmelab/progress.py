"""Progress bars for the long commands: made at the first report, closed on exit."""

from __future__ import annotations

import sys
from typing import Any


class LazyBar:
    """A tqdm bar on stderr that appears at the first progress report - so a command
    that refuses its input prints its one line and no empty bar - and is closed when
    the ``with`` block ends. Call it as ``bar(done, total)`` or ``bar(done, total, note)``."""

    def __init__(self, unit: str, desc: str | None = None, disable: bool | None = None) -> None:
        self.unit, self.desc, self.disable = unit, desc, disable
        self.bar: Any = None

    def __call__(self, done: int, total: int, note: str = "") -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(desc=self.desc, unit=self.unit, total=total or None,
                            file=sys.stderr, disable=self.disable)  # fmt: skip
        self.bar.n = done
        if note:
            self.bar.set_postfix_str(note[-40:], refresh=False)
        self.bar.refresh()

    def __enter__(self) -> LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
