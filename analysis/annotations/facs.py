"""Action units in FACS notation: ``L12+14``, ``4(B/C)+7B``, ``AU1+AU2``, ``M57``.

A code is one token of a ``+``-joined list: an optional side (``L``, ``R``, or ``B`` -
bilateral, the default), an optional ``AU`` prefix or a ``M``/``A`` prefix (DFME's
miscellaneous codes such as M57), the AU number, and an optional intensity letter
A-E or an uncertain intensity in brackets (``(B/C)``). ``parse_aus`` returns the
codes; :class:`ValueError` says which token is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The 21 AUs of the MMME paper's Table 2.
MMME_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 25, 26, 41, 42)
#: DFME's 24 AUs (M57 and M58 are head movements, written with their M prefix).
DFME_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 20, 23, 24, 25, 28, 31, 38, 39)
DFME_MISC = ("M57", "M58")

_TOKEN = re.compile(
    r"^(?P<side>[LRB])?\s*(?P<prefix>AU|M|A)?\s*(?P<num>\d{1,2})"
    r"\s*(?P<int>[A-Ea-e]|\([A-Ea-e](?:/[A-Ea-e])*\))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ActionUnit:
    number: int
    side: str = ""  # "L", "R" or "" (bilateral or not stated)
    intensity: str = ""  # "A".."E", "B/C" when uncertain, "" when not coded
    prefix: str = ""  # "M" for DFME's head-movement codes

    @property
    def code(self) -> str:
        """The AU without side and intensity (``12``, ``M57``): what agreement compares."""
        return f"{self.prefix}{self.number}"

    def __str__(self) -> str:
        inten = f"({self.intensity})" if "/" in self.intensity else self.intensity
        return f"{self.side}{self.prefix}{self.number}{inten}"


def parse_aus(text: str) -> list[ActionUnit]:
    """Parse ``"L12+14"`` and the like. Empty text (or ``-``, ``none``) is no AU."""
    text = (text or "").strip()
    if text.lower() in ("", "-", "none", "nan", "/"):
        return []
    out = []
    for raw in re.split(r"\s*[+,;]\s*", text):
        token = raw.strip()
        if not token:
            raise ValueError(f"{text!r}: an empty AU between '+' signs")
        m = _TOKEN.match(token)
        if not m:
            raise ValueError(f"{text!r}: {token!r} is not an AU in FACS notation (e.g. L12, 4B)")
        prefix = (m["prefix"] or "").upper()
        prefix = "M" if prefix == "M" else ""
        side = (m["side"] or "").upper()
        inten = (m["int"] or "").upper().strip("()")
        out.append(ActionUnit(int(m["num"]), "" if side == "B" else side, inten, prefix))
    return out


def format_aus(aus: list[ActionUnit]) -> str:
    return "+".join(str(a) for a in aus)
