"""Participant ids and session numbers: pseudonyms that can never carry a name.

A base module (no layer imports it through another): the console's form, the CLI
and the engine all check an id with :func:`participant_id_problem` before anything
is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmmelab.errors import ConfigError
from mmmelab.streams import ConsentLevel

PARTICIPANT_ID_RE = re.compile(r"^[A-Za-z0-9]{1,16}$")  # what a folder name can hold
#: The lab's pseudonym pattern unless ``[lab] participant_pattern`` says otherwise.
DEFAULT_PARTICIPANT_PATTERN = "P[0-9]{1,15}"


def participant_id_problem(value: str, pattern: str = DEFAULT_PARTICIPANT_PATTERN) -> str | None:
    """Why ``value`` is not an acceptable participant id, or None when it is.

    An id is a pseudonym: it must match the lab's pattern (``P`` and digits by
    default) as a whole, and in any case be 1-16 ASCII letters and digits, so a
    real name or a path can never end up in a folder name.
    """
    if not PARTICIPANT_ID_RE.fullmatch(value) or not re.fullmatch(pattern, value):
        return (
            f"is {value!r}; use the lab's pseudonymous code (pattern {pattern!r}, "
            f"1-16 letters and digits, e.g. {example_participant_id(pattern)}) - never a name"
        )
    return None


def example_participant_id(pattern: str) -> str:
    """An id that the default pattern accepts, or the pattern itself for a custom one."""
    return "P07" if pattern == DEFAULT_PARTICIPANT_PATTERN else f"one matching {pattern}"


def check_participant_id(value: str, pattern: str = DEFAULT_PARTICIPANT_PATTERN) -> str:
    """Validate a pseudonymous participant id (see :func:`participant_id_problem`)."""
    problem = participant_id_problem(value, pattern)
    if problem is not None:
        raise ConfigError("(command line)", "participant", problem)
    return value


MAX_SESSION = 99  # the folder name holds two digits


def check_session_number(value: int) -> int:
    """``value`` when it is a session number (1 to ``MAX_SESSION``), else a ConfigError."""
    if not 1 <= value <= MAX_SESSION:
        raise ConfigError(
            "(command line)", "session", f"is {value}; use a session number from 1 to {MAX_SESSION}"
        )
    return value


@dataclass(frozen=True)
class ParticipantInfo:
    """Who is recorded: the pseudonymous id, the session number (1-99), the consent level
    and the experimenter's notes (stored in the manifest)."""

    id: str
    session: int = 1
    consent_level: ConsentLevel = ConsentLevel.RESEARCH_ONLY
    notes: str = ""
