"""Consent levels, and the one rule every export obeys.

Level 1: all data may be shared and the face shown. Level 2: the data may be shared
for research, but face images and video may not be published (MMME: 13 of its 75
participants). A session without a recorded level counts as level 2 - the safe
reading. ``check_public`` is called before any face file (video, frames, crops) is
written to a public tree; it raises one line naming the participant and the reason.
"""

from __future__ import annotations

from mmmelab.errors import LabError
from mmmelab.streams import ConsentLevel

LEVELS: dict[int, str] = {
    ConsentLevel.PUBLIC: "all data may be shared and the face shown",
    ConsentLevel.RESEARCH_ONLY: "data may be shared for research; face images and video "
    "may not be published",
}


class ConsentError(LabError):
    """An export would publish what a participant's consent does not allow."""


def face_public(level: int) -> bool:
    """May this participant's face appear in a public export?"""
    return level == ConsentLevel.PUBLIC


def check_public(participant: str, level: int, what: str) -> None:
    """Refuse to put ``what`` (a face file) of a participant without level 1 in public."""
    if not face_public(level):
        reason = LEVELS.get(level, "an unknown consent level counts as level 2")
        raise ConsentError(f"sub-{participant}: consent level {level} ({reason}): {what} may "
                           f"not enter a public export; give --restricted DIR to write it to a "
                           f"separate restricted tree, or leave the face out")  # fmt: skip
