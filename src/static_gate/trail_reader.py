"""Reading the access trail back: filtered, across rotated files, crash-tolerant.

:func:`read_trail` yields the records of a trail file that match a user, a
path prefix, a time range or a share link, oldest first, with the files
that logrotate has rotated when asked.  ``static-gate audit`` prints them.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import StaticGateError
from .trail import RECORD_START, format_time


def read_trail(
    path: Path,
    *,
    user: str | None = None,
    path_prefix: str | None = None,
    since: float | None = None,
    until: float | None = None,
    share: str | None = None,
    include_rotated: bool = False,
) -> TrailRecords:
    """Read the records of the trail at *path* that match every filter given.

    :param path_prefix: a path; it matches whole segments, so ``/reports/``
        and ``/reports`` match ``/reports/a.html`` but not ``/reports-old``.
    :param since: seconds since the epoch; records from then on.
    :param until: seconds since the epoch; records before then.
    :param include_rotated: read the rotated files too (see
        :func:`trail_files`), oldest first.
    :raises StaticGateError: there is no trail file; while iterating, a file
        cannot be read.
    """
    files = trail_files(path, include_rotated)
    if not files:
        raise StaticGateError(
            f"the trail file {path} does not exist: the gate has recorded "
            "nothing there yet, or [trail] file names another file."
        )

    keep = _Filter(
        user=user,
        share=share,
        prefix=path_prefix,
        since=None if since is None else format_time(since),
        # Records hold whole seconds: one at 10:00:00 may be 10:00:00.7.
        until=None if until is None else format_time(math.ceil(until)),
    )
    return TrailRecords(files, keep)


def trail_files(path: Path, include_rotated: bool = False) -> list[Path]:
    """Return the trail file and, if asked, its rotated files, oldest first.

    Rotated files are named the way logrotate names them: ``trail.jsonl.1``,
    ``trail.jsonl.2.gz``, or with ``dateext`` ``trail.jsonl-20250601``.  They
    are put in the order of their first records' times, which holds for any
    naming scheme.
    """
    files = [path] if path.is_file() else []
    if not include_rotated:
        return files

    rotated = re.compile(re.escape(path.name) + r"[.-]\d[\d-]*(\.gz)?")
    try:
        siblings = [
            sibling
            for sibling in path.parent.iterdir()
            if rotated.fullmatch(sibling.name) and sibling.is_file()
        ]
    except OSError:
        siblings = []

    return sorted(siblings, key=_first_time) + files


def is_within(path: str, prefix: str) -> bool:
    """Tell whether *path* is *prefix* or lies under it, by whole segments."""
    folder = prefix.rstrip("/")
    return path.rstrip("/") == folder or path.startswith(folder + "/")


class TrailRecords(Iterator[dict[str, Any]]):
    """The matching records of a trail, read lazily, oldest file first.

    A line that is not a JSON object (the last line of a file cut short by a
    crash, say) is skipped and counted in :attr:`skipped`; a record that was
    appended to such a line afterwards is still read.
    """

    def __init__(
        self, files: list[Path], keep: Callable[[dict[str, Any]], bool]
    ) -> None:
        self.files = files
        #: Lines skipped so far because they held no readable record.
        self.skipped = 0
        self._records = (
            record for file in files for record in self._read(file) if keep(record)
        )

    def __next__(self) -> dict[str, Any]:
        return next(self._records)

    def _read(self, path: Path) -> Iterator[dict[str, Any]]:
        try:
            with _open_text(path) as lines:
                for line in lines:
                    line = line.strip()
                    if not line:
                        continue

                    record = _load(line)
                    if record is None:
                        self.skipped += 1
                        start = line.rfind(RECORD_START, 1)
                        record = _load(line[start:]) if start > 0 else None

                    if record is not None:
                        yield record
        except EOFError:
            # A compressed file cut short: what could be read has been.
            self.skipped += 1
        except OSError as error:
            raise StaticGateError(
                f"cannot read the trail file {path} ({error.strerror or error})."
            ) from None


@dataclass(frozen=True)
class _Filter:
    user: str | None
    share: str | None
    prefix: str | None
    #: Times in the records' own format, which sorts as text.
    since: str | None
    until: str | None

    def __call__(self, record: dict[str, Any]) -> bool:
        if self.user is not None and record.get("user") != self.user:
            return False

        if self.share is not None and record.get("share") != self.share:
            return False

        if self.prefix is not None:
            path = record.get("path")
            if not isinstance(path, str) or not is_within(path, self.prefix):
                return False

        if self.since is None and self.until is None:
            return True

        moment = record.get("time")
        return (
            isinstance(moment, str)
            and (self.since is None or moment >= self.since)
            and (self.until is None or moment < self.until)
        )


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")

    return open(path, encoding="utf-8", errors="replace")


def _load(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None

    return record if isinstance(record, dict) else None


def _first_time(path: Path) -> str:
    """The time of the first readable record in *path*; empty without one."""
    try:
        with _open_text(path) as lines:
            for line in lines:
                record = _load(line)
                if record is not None:
                    return str(record.get("time", ""))
    except (OSError, EOFError):
        pass

    return ""
