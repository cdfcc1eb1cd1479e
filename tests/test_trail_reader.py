"""Reading the access trail back: filters, rotated files, lines cut short."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from static_gate.errors import StaticGateError
from static_gate.trail import Trail, TrailConfig
from static_gate.trail_reader import is_within, read_trail, trail_files

#: 2027-01-15T08:00:00Z
WHEN = 1_800_000_000.0
KEYS = (
    "time",
    "event",
    "user",
    "share",
    "client",
    "method",
    "path",
    "rule",
    "decision",
    "reason",
    "status",
    "bytes",
)


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    return tmp_path / "trail.jsonl"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_records(path: Path, *records: dict[str, Any]) -> None:
    """Write records as the trail does, with defaults for missing fields."""
    lines = []
    for fields in records:
        record = dict.fromkeys(KEYS)
        record.update({"event": "content", "time": "2027-01-15T08:00:00Z"})
        record.update(fields)
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    with open(path, "a", encoding="utf-8") as file:
        file.writelines(lines)


def test_records_read_back_as_written(trail_path: Path) -> None:
    trail = Trail(TrailConfig(trail_path), b"k" * 48)
    try:
        trail.content(
            WHEN,
            user="alice",
            client="203.0.113.7",
            method="GET",
            path="/reports/mia.html",
            rule="/reports/",
            decision="allow",
            reason="user listed",
            status=200,
            sent=1234,
        )
        trail.event(WHEN + 5, "logout", client="203.0.113.7", user="alice")
    finally:
        trail.close()

    records = list(read_trail(trail_path))

    assert records == read_lines(trail_path)
    assert [record["event"] for record in records] == ["content", "logout"]


def test_a_last_line_cut_by_a_crash_is_skipped_and_counted(trail_path: Path) -> None:
    write_records(trail_path, {"path": "/a.html"}, {"path": "/b.html"})
    with open(trail_path, "a") as file:
        file.write('{"time":"2027-01-15T08:00:01Z","event":"content","pa')

    records = read_trail(trail_path)

    assert [record["path"] for record in records] == ["/a.html", "/b.html"]
    assert records.skipped == 1


def test_a_record_written_after_a_cut_line_is_still_read(trail_path: Path) -> None:
    with open(trail_path, "a") as file:
        file.write('{"time":"2027-01-15T08:00:00Z","event":"content","pa')
    write_records(trail_path, {"path": "/after.html"})

    records = read_trail(trail_path)

    assert [record["path"] for record in records] == ["/after.html"]
    assert records.skipped == 1


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '"text"', "{", "\x00\x01"])
def test_lines_that_are_no_record_are_skipped(trail_path: Path, line: str) -> None:
    write_records(trail_path, {"path": "/a.html"})
    with open(trail_path, "a") as file:
        file.write(line + "\n\n")
    write_records(trail_path, {"path": "/b.html"})

    records = read_trail(trail_path)

    assert [record["path"] for record in records] == ["/a.html", "/b.html"]
    assert records.skipped == 1


def test_a_missing_trail_file_is_an_error(trail_path: Path) -> None:
    with pytest.raises(StaticGateError, match="does not exist"):
        read_trail(trail_path)


@pytest.mark.parametrize(
    ("prefix", "path", "within"),
    [
        ("/reports/", "/reports/mia.html", True),
        ("/reports/", "/reports/", True),
        ("/reports/", "/reports", True),
        ("/reports/", "/reports/2025/mia.html", True),
        ("/reports/", "/reports-old/mia.html", False),
        ("/reports/", "/reportsx", False),
        ("/reports", "/reports/mia.html", True),
        ("/reports", "/reports-old/mia.html", False),
        ("/reports/mia.html", "/reports/mia.html", True),
        ("/reports/mia.html", "/reports/mia.html.gz", False),
        ("/", "/anything.html", True),
        ("/reports/", "/", False),
        ("/reports/", "/other/reports/mia.html", False),
    ],
)
def test_path_prefix_matches_whole_segments(
    prefix: str, path: str, within: bool
) -> None:
    assert is_within(path, prefix) is within


def test_filter_by_path_prefix(trail_path: Path) -> None:
    write_records(
        trail_path,
        {"path": "/reports/mia.html"},
        {"path": "/reports-old/mia.html"},
        {"path": None, "event": "login"},
        {"path": "/reports/"},
    )

    found = read_trail(trail_path, path_prefix="/reports/")

    assert [record["path"] for record in found] == ["/reports/mia.html", "/reports/"]


def test_filter_by_user(trail_path: Path) -> None:
    write_records(
        trail_path,
        {"user": "alice", "path": "/a"},
        {"user": "bob", "path": "/b"},
        {"user": "alice", "event": "logout"},
        {"user": None, "share": "alice"},
    )

    found = read_trail(trail_path, user="alice")

    assert [(r["event"], r["path"]) for r in found] == [
        ("content", "/a"),
        ("logout", None),
    ]


def test_filter_by_share(trail_path: Path) -> None:
    write_records(
        trail_path,
        {"share": "link-one", "path": "/a"},
        {"share": "link-two", "path": "/b"},
        {"user": "link-one", "path": "/c"},
    )

    found = read_trail(trail_path, share="link-one")

    assert [record["path"] for record in found] == ["/a"]


def test_filter_by_time_since_inclusive_until_exclusive(trail_path: Path) -> None:
    write_records(
        trail_path,
        {"time": "2027-01-15T07:59:59Z", "path": "/early"},
        {"time": "2027-01-15T08:00:00Z", "path": "/start"},
        {"time": "2027-01-15T08:59:59Z", "path": "/inside"},
        {"time": "2027-01-15T09:00:00Z", "path": "/end"},
        {"path": "/no-time", "time": None},
    )

    found = read_trail(trail_path, since=WHEN, until=WHEN + 3600)

    assert [record["path"] for record in found] == ["/start", "/inside"]


def test_until_within_a_second_keeps_that_second(trail_path: Path) -> None:
    """Records hold whole seconds; one at 08:00:00 may be 08:00:00.2."""
    write_records(trail_path, {"time": "2027-01-15T08:00:00Z"})

    assert len(list(read_trail(trail_path, until=WHEN + 0.5))) == 1


def test_filters_combine(trail_path: Path) -> None:
    write_records(
        trail_path,
        {"user": "alice", "path": "/reports/a"},
        {"user": "alice", "path": "/staff/a"},
        {"user": "bob", "path": "/reports/b"},
    )

    found = read_trail(trail_path, user="alice", path_prefix="/reports")

    assert [record["path"] for record in found] == ["/reports/a"]


def rotate_like_logrotate(trail_path: Path) -> list[Path]:
    """Three generations: .2.gz (oldest), .1 (delaycompress), current."""
    older = trail_path.with_name("trail.jsonl.2.gz")
    old = trail_path.with_name("trail.jsonl.1")
    write_records(old, {"time": "2027-01-13T08:00:00Z", "path": "/monday"})
    with gzip.open(older, "wt", encoding="utf-8") as file:
        file.write(
            json.dumps({**dict.fromkeys(KEYS), "time": "2027-01-12T08:00:00Z"})[:-1]
            + ',"path":"/sunday"}\n'
        )
    write_records(trail_path, {"time": "2027-01-15T08:00:00Z", "path": "/today"})
    return [older, old, trail_path]


def test_rotated_files_are_read_oldest_first_when_asked(trail_path: Path) -> None:
    rotate_like_logrotate(trail_path)

    everything = read_trail(trail_path, include_rotated=True)
    current = read_trail(trail_path)

    assert [r["path"] for r in everything] == ["/sunday", "/monday", "/today"]
    assert [r["path"] for r in current] == ["/today"]


def test_rotated_files_with_dates_in_their_names(trail_path: Path) -> None:
    """logrotate's ``dateext``: trail.jsonl-20270113, then .gz when compressed."""
    write_records(
        trail_path.with_name("trail.jsonl-20270114"),
        {"time": "2027-01-14T08:00:00Z", "path": "/tuesday"},
    )
    with gzip.open(trail_path.with_name("trail.jsonl-20270113.gz"), "wb") as file:
        file.write(b'{"time":"2027-01-13T08:00:00Z","path":"/monday"}\n')
    write_records(trail_path, {"time": "2027-01-15T08:00:00Z", "path": "/today"})
    trail_path.with_name("trail.jsonl.bak").write_text('{"path":"/not-a-rotation"}\n')

    found = read_trail(trail_path, include_rotated=True)

    assert [r["path"] for r in found] == ["/monday", "/tuesday", "/today"]


def test_rotated_files_are_enough_when_the_current_one_is_missing(
    trail_path: Path,
) -> None:
    """Just after a rotation, before the gate has written the next record."""
    write_records(trail_path.with_name("trail.jsonl.1"), {"path": "/yesterday"})

    assert trail_files(trail_path, include_rotated=True) == [
        trail_path.with_name("trail.jsonl.1")
    ]
    assert [r["path"] for r in read_trail(trail_path, include_rotated=True)] == [
        "/yesterday"
    ]


def test_a_compressed_file_cut_short_is_counted(trail_path: Path) -> None:
    whole = gzip.compress(b'{"time":"2027-01-12T08:00:00Z","path":"/a"}\n' * 500)
    trail_path.with_name("trail.jsonl.2.gz").write_bytes(whole[: len(whole) // 2])
    write_records(trail_path, {"time": "2027-01-15T08:00:00Z", "path": "/today"})

    records = read_trail(trail_path, include_rotated=True)
    paths = [record["path"] for record in records]

    assert paths[-1] == "/today"
    assert records.skipped >= 1
