"""Typed reading of TOML tables that collects every problem found.

A :class:`Reader` belongs to one file; each :class:`Table` it hands out
returns a safe default for a value of the wrong type and records a problem
line naming the file, the table, the key, what was found and what is
expected.  The caller raises one error with all the lines at the end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

T = TypeVar("T")


def parse_duration(text: str) -> int:
    """Turn ``"8h"``, ``"30m"`` or ``"1h30m"`` into seconds.

    :raises ValueError: anything else, zero included.
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(text)

    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(text)

    return seconds


class Table:
    """One TOML table being read; records problems instead of raising."""

    def __init__(
        self, reader: Reader, name: str, data: Mapping[str, Any], known: set[str]
    ) -> None:
        self.reader = reader
        self.name = name
        self.data = data
        for key in sorted(set(data) - known):
            choices = ", ".join(sorted(known))
            self.problem(key, f"is not a known key; {self.name} takes {choices}")

    def problem(self, key: str, text: str) -> None:
        self.reader.problems.append(f"{self.reader.name}: {self.name} {key} {text}.")

    def get(self, key: str, kind: type[T], expected: str, default: T) -> T:
        value = self.data.get(key, default)
        if value is default or isinstance(value, kind):
            return value

        self.problem(key, f"must be {expected}, got {value!r}")
        return default

    def text(self, key: str, default: str) -> str:
        return self.get(key, str, "a string", default)

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, bool, "true or false", default)

    def path(self, key: str) -> Path | None:
        value = self.get(key, str, "a path (a string)", "")
        if not value:
            return None

        return self.reader.folder / os.path.expanduser(value)

    def duration(self, key: str, default: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default

        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return parse_duration(value)
        except ValueError:
            self.problem(
                key,
                f'must be a duration such as "30m", got {value!r}; '
                "use a whole number followed by s, m, h or d",
            )
            return default

    def names(
        self, key: str, check: Callable[[str], bool], what: str
    ) -> frozenset[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"must be a list of {what}s, got {value!r}")
            return frozenset()

        for name in value:
            if not check(name):
                self.problem(key, f"has {name!r}, which is not a valid {what}")

        return frozenset(value)


class Reader:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.problems: list[str] = []

    def table(self, data: Mapping[str, Any], name: str, known: Iterable[str]) -> Table:
        """Return the table *name* of *data*, empty when it is missing."""
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problems.append(f"{self.name}: [{name}] must be a table.")
            value = {}

        return Table(self, f"[{name}]", value, set(known))
