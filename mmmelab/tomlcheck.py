"""Typed reading of TOML tables with messages that name the file, the key and what is allowed.

Used by the lab configuration and the protocol loaders. A ``Table`` wraps one TOML
table; each accessor checks the type and range of one key and raises
:class:`~mmmelab.errors.ConfigError` naming the dotted key. ``Table.done()``
rejects keys nobody asked for, so a typo (``fsp = 150``) is an error, not a
silently ignored setting.

The settings' dataclasses are declarative: each field is named once, with its
default and what is allowed in :func:`setting`; :func:`read_settings` reads a table
into one by the fields' types (bool, int, float, str, a string enum, a tuple of
strings) and then rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import tomllib
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from mmmelab.errors import ConfigError

T = TypeVar("T")

_MISSING: Any = object()


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "", "is a folder, not a TOML file") from None
    except PermissionError:
        raise ConfigError(str(path), "", "cannot be read (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"is not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"is not valid TOML: {exc}") from None


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class Table:
    """One TOML table being read, with the file and key path it came from."""

    def __init__(self, path: Path | str, data: Any, prefix: str = "") -> None:
        self.path = str(path)
        self.prefix = prefix
        if not isinstance(data, dict):
            raise ConfigError(
                self.path, prefix or "(top level)", f"must be a table, got {_type_name(data)}"
            )
        self.data: dict[str, Any] = data
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.path, self.key(name), problem)

    def _get(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            near = difflib.get_close_matches(
                name, [k for k in self.data if k not in self._seen], n=1, cutoff=0.6
            )
            hint = f" (found {near[0]!r} instead - a typo?)" if near else ""
            raise self.error(name, f"is required but missing{hint}")
        return default

    def has(self, name: str) -> bool:
        return name in self.data

    def table(self, name: str, required: bool = False) -> Table:
        value = self._get(name, _MISSING if required else {})
        return Table(self.path, value, self.key(name))

    def tables(self, name: str, required: bool = False) -> list[Table]:
        """An array of tables (``[[name]]``)."""
        value = self._get(name, _MISSING if required else [])
        if not isinstance(value, list):
            raise self.error(
                name, f"must be an array of tables ([[{name}]]), got {_type_name(value)}"
            )
        return [Table(self.path, item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def flag(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def text(self, name: str, default: Any = _MISSING, choices: Iterable[str] | None = None) -> str:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_type_name(value)} {value!r}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self.error(name, f"is {value!r}; allowed: {', '.join(allowed)}")
        return value

    def integer(
        self, name: str, default: Any = _MISSING, lo: int | None = None, hi: int | None = None
    ) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {_type_name(value)} {value!r}")
        self._range(name, value, lo, hi)
        return value

    def number(
        self,
        name: str,
        default: Any = _MISSING,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {_type_name(value)} {value!r}")
        value = float(value)
        if not math.isfinite(value):  # TOML allows nan and inf; no setting does
            raise self.error(name, f"is {value}; must be a finite number")
        if lo_open and lo is not None and value <= lo:
            raise self.error(name, f"is {value:g}; must be greater than {lo:g}")
        self._range(name, value, None if lo_open else lo, hi)
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self._get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be a list of strings, got {value!r}")
        return list(value)

    def _range(self, name: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise self.error(name, f"is {value:g}; allowed: {lo:g} to {hi:g}")
        if lo is not None and value < lo:
            raise self.error(name, f"is {value:g}; must be at least {lo:g}")
        if hi is not None and value > hi:
            raise self.error(name, f"is {value:g}; must be at most {hi:g}")

    def done(self) -> None:
        """Reject keys that no accessor asked for (typos, settings from another version)."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            allowed = ", ".join(sorted(self._seen)) or "(none)"
            raise ConfigError(
                self.path, self.key(unknown[0]), f"unknown key; allowed here: {allowed}"
            )


def setting(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field read from TOML: its default, for numbers the allowed range
    (``lo_open``: strictly above ``lo``), for text the allowed values (an enum field
    allows its values without this); nothing else is needed to read the field
    (:func:`read_settings`)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices}
    if isinstance(default, list | tuple):
        return dataclasses.field(default=tuple(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def read_settings(cls: type[T], t: Table, done: bool = True) -> T:
    """An instance of the dataclass ``cls`` from ``t``: every field read by its type
    with the limits of its :func:`setting` (default: the field's default), then, with
    ``done``, unknown keys refused. Checks between fields are the caller's."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind, meta = hints[f.name], f.metadata
        default = f.default if f.default is not dataclasses.MISSING else _MISSING
        if kind is bool:
            values[f.name] = t.flag(f.name, default)
        elif kind is int:
            values[f.name] = t.integer(f.name, default, lo=meta.get("lo"), hi=meta.get("hi"))
        elif kind is float:
            values[f.name] = t.number(f.name, default, lo=meta.get("lo"), hi=meta.get("hi"),
                                      lo_open=meta.get("lo_open", False))  # fmt: skip
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            allowed = [k.value for k in kind]
            plain = default.value if isinstance(default, enum.Enum) else default
            values[f.name] = kind(t.text(f.name, plain, choices=allowed))
        elif kind is str:
            values[f.name] = t.text(f.name, default, choices=meta.get("choices"))
        elif kind == tuple[str, ...]:
            plain = list(default) if default is not _MISSING else default
            values[f.name] = tuple(t.str_list(f.name, plain))
        else:  # a field of a kind this reader does not know is the caller's to read
            raise TypeError(f"{cls.__name__}.{f.name}: no TOML reading for {kind!r}")
    if done:
        t.done()
    return cls(**values)


def resolve_dir(base: Path, value: str) -> Path:
    """``value`` as a folder: absolute as given, else under ``base``."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def jsonable(obj: Any) -> Any:
    """``obj`` (a dataclass's asdict) with paths as text and enums as their values."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj
