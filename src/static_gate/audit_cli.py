"""``static-gate audit``: answer questions from the access trail.

Who read what, and when: the records of ``[trail] file`` (and of its
rotated files) filtered by user, path, time and share link, printed as a
table or as JSON lines.  Only the ``[trail]`` table of the configuration is
read, so the command works where the signing key is not available.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from .config import CONFIG_ENV, read_one_table
from .errors import ConfigError, UsageError
from .paths import PathRejected, canonical_path
from .tables import parse_duration
from .trail_reader import read_trail

DEFAULT_CONFIG = "gate.toml"

#: The table's headings; the path comes last, as it has no usual width.
_COLUMNS = ("time (UTC)", "who", "client", "method", "status", "decision", "path")


def add_audit_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: argparse.ArgumentParser,
) -> None:
    """Add ``audit`` to the subcommands of ``static-gate``.

    :param with_config: the parent parser that adds ``--config``.
    """
    audit = commands.add_parser(
        "audit",
        parents=[with_config],
        help="show who read what, from the access trail",
        description="Show the access trail's records that match every filter "
        "given, oldest first.  Times are UTC unless they carry an offset.",
    )
    audit.add_argument("--user", metavar="NAME", help="only this user's records")
    audit.add_argument(
        "--path",
        metavar="PREFIX",
        help="only this path and what lies under it, by whole segments",
    )
    audit.add_argument(
        "--since",
        metavar="WHEN",
        help="from a date or time (2025-06-01, 2025-06-01T14:30) "
        "or that long ago (2h, 7d)",
    )
    audit.add_argument("--until", metavar="WHEN", help="before WHEN, as for --since")
    audit.add_argument("--share", metavar="ID", help="only this share link's records")
    audit.add_argument(
        "--json", action="store_true", help="print the records as JSON lines"
    )
    audit.add_argument(
        "--file", metavar="FILE", help="read this trail file, not [trail] file"
    )
    audit.add_argument(
        "--rotated",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read the rotated files too (default: yes)",
    )
    audit.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    now = time.time()
    since = _moment_option("--since", args.since, now)
    until = _moment_option("--until", args.until, now)
    if since is not None and until is not None and since >= until:
        raise UsageError("--since is not before --until, so nothing could match.")

    prefix = None if args.path is None else _path_option(args.path)
    trail = Path(args.file) if args.file else _trail_file(_config_path(args))
    records = read_trail(
        trail,
        user=args.user,
        path_prefix=prefix,
        since=since,
        until=until,
        share=args.share,
        include_rotated=args.rotated,
    )
    try:
        if args.json:
            for record in records:
                print(json.dumps(record, separators=(",", ":")))
        else:
            _print_table(records)
    except BrokenPipeError:
        # The reader (head, less) has gone: stop quietly, as other tools do,
        # and keep Python from failing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    if records.skipped:
        print(
            f"static-gate: skipped {records.skipped} unreadable line(s) "
            "of the trail (a line cut short by a crash, say)",
            file=sys.stderr,
        )

    return 0


def parse_moment(text: str, now: float) -> float:
    """Turn ``--since``/``--until`` text into seconds since the epoch.

    A duration (``2h``, ``1d12h``) means that long before *now*.  A date
    (``2025-06-01``) is its midnight, a time alone (``14:30``) is today's,
    and both are UTC unless they carry an offset (``+02:00``, ``Z``).

    :raises ValueError: none of these.
    """
    try:
        return now - parse_duration(text)
    except ValueError:
        pass

    text = text.strip()
    if text[-1:] in ("Z", "z"):
        # Python 3.10 reads offsets, but not "Z".
        text = text[:-1] + "+00:00"

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # Python 3.11 would read "2025" as the time 20:25.
        if ":" not in text:
            raise

        today = datetime.fromtimestamp(now, timezone.utc).date()
        moment = datetime.combine(today, clock_time.fromisoformat(text))

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)

    return moment.timestamp()


def _moment_option(option: str, text: str | None, now: float) -> float | None:
    if text is None:
        return None

    try:
        return parse_moment(text, now)
    except ValueError:
        raise UsageError(
            f"{option} must be a date such as 2025-06-01, a time such as "
            f"2025-06-01T14:30 (UTC unless it has an offset) or a duration "
            f"such as 2h, got {text!r}."
        ) from None


def _path_option(text: str) -> str:
    if not text.startswith("/"):
        raise UsageError(
            f"--path must start with '/', such as /reports/, got {text!r}."
        )

    try:
        # canonical_path takes WSGI text: UTF-8 bytes carried as Latin-1.
        return canonical_path(text.encode("utf-8", "replace").decode("latin-1"))
    except PathRejected as error:
        raise UsageError(
            f"--path {text!r} cannot be a request path: {error}."
        ) from None


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def _trail_file(config: Path) -> Path:
    path = trail_file_setting(config)
    if path is None:
        raise ConfigError(
            f"{config}: [trail] file is not set, so the gate writes no trail "
            'file; set file = "trail.jsonl" in [trail], or name one with --file.'
        )

    return path


def trail_file_setting(path: str | os.PathLike[str]) -> Path | None:
    """Return ``[trail] file`` from the configuration at *path*, resolved.

    Relative paths are relative to the configuration's folder, as in
    :func:`static_gate.config.load_config`.

    :raises ConfigError: the file cannot be read, is not TOML, or the key is
        not a string.
    """
    source, table = read_one_table(path, "trail")
    value = table.get("file")
    if value is None or value == "":
        return None

    if not isinstance(value, str):
        raise ConfigError(
            f"{source.name}: [trail] file must be a path (a string), got {value!r}."
        )

    return source.parent / os.path.expanduser(value)


def _print_table(records: Iterable[dict[str, Any]]) -> None:
    # Read to the end first, so that every column fits its widest value;
    # --json prints as it reads.
    rows = [_row(record) for record in records]
    if not rows:
        print("no records match")
        return

    table = [_COLUMNS, *rows]
    widths = [max(len(row[n]) for row in table) for n in range(len(_COLUMNS))]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def _row(record: dict[str, Any]) -> tuple[str, ...]:
    moment = str(record.get("time", "")).replace("T", " ").rstrip("Z")
    who = record.get("user")
    if who is None and record.get("share") is not None:
        who = f"share:{record['share']}"

    event = record.get("event")
    decision = record.get("decision") if event == "content" else event
    values = (
        moment,
        who,
        record.get("client"),
        record.get("method"),
        record.get("status"),
        decision,
        record.get("path"),
    )
    return tuple(_cell(value) for value in values)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"

    text = str(value)
    # A user name as entered at a failed sign-in may hold anything, such as
    # escape sequences that would rewrite the terminal.
    return text if text.isprintable() else repr(text)[1:-1]
