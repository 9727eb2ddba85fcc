"""Progress bars for the long commands: made at the first report, closed on exit."""

from __future__ import annotations

import sys
from typing import Any


class LazyBar:
    """A tqdm bar on stderr that appears at the first progress report - so a command
    that refuses its input prints its one line and no empty bar - and is closed when
    the ``with`` block ends. Call it as ``bar(done, total)`` or ``bar(done, total, note)``;
    a new ``total`` restarts it (one bar over each fold's epochs). ``position`` 1 puts
    it under the main bar, and it goes when done."""

    def __init__(self, unit: str, desc: str | None = None, disable: bool | None = None,
                 position: int | None = None) -> None:  # fmt: skip
        self.unit, self.desc, self.disable, self.position = unit, desc, disable, position
        self.bar: Any = None

    def __call__(self, done: int, total: int, note: str = "") -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(desc=self.desc, unit=self.unit, total=total or None,
                            file=sys.stderr, disable=self.disable, position=self.position,
                            leave=self.position in (None, 0))  # fmt: skip
        if total and total != self.bar.total:  # a bar that is reused (epochs of each fold)
            self.bar.reset(total=total)
        self.bar.n = done
        if note:
            self.bar.set_postfix_str(note[-40:], refresh=False)
        self.bar.refresh()

    def __enter__(self) -> LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
