"""``static-gate audit``: who read what, from the access trail."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from static_gate import cli
from static_gate.audit_cli import add_audit_command, parse_moment, trail_file_setting
from static_gate.config import CONFIG_ENV
from static_gate.errors import ConfigError, StaticGateError, UsageError

FIELDS = (
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
#: 2027-01-15T08:00:00Z
WHEN = 1_800_000_000.0


def run(*argv: str) -> int:
    """Run ``static-gate audit`` and return its exit status.

    Through :func:`static_gate.cli.main` once cli.py offers the command;
    until then through a parser built here that handles errors as main does.
    """
    if hasattr(cli, "add_audit_command"):
        return cli.main(["audit", *argv])

    parser = argparse.ArgumentParser(prog="static-gate")
    commands = parser.add_subparsers(required=True)
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument("--config", metavar="FILE")
    add_audit_command(commands, with_config)
    try:
        args = parser.parse_args(["audit", *argv])
        return int(args.handler(args))
    except SystemExit as exit:
        return 0 if exit.code is None else int(exit.code)
    except (ConfigError, UsageError) as error:
        for line in str(error).splitlines():
            print(f"static-gate: {line}", file=sys.stderr)
        return 2
    except StaticGateError as error:
        print(f"static-gate: {error}", file=sys.stderr)
        return 1


def record(when: float = WHEN, **fields: Any) -> dict[str, Any]:
    """A trail record as the gate writes it: alice reads a report."""
    values: dict[str, Any] = dict.fromkeys(FIELDS)
    values.update(
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        event="content",
        user="alice",
        client="203.0.113.7",
        method="GET",
        path="/reports/mia.html",
        rule="/reports/",
        decision="allow",
        reason="user listed",
        status=200,
        bytes=1234,
    )
    values.update(fields)
    return values


def write(path: Path, *records: dict[str, Any]) -> Path:
    with open(path, "a", encoding="utf-8") as file:
        for value in records:
            file.write(json.dumps(value, separators=(",", ":")) + "\n")
    return path


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A trail with a morning of reading and signing in."""
    return write(
        tmp_path / "trail.jsonl",
        record(WHEN, event="login", method=None, path=None, rule=None, status=303),
        record(WHEN + 60),
        record(WHEN + 120, user="bob", path="/reports/", client="198.51.100.4"),
        record(WHEN + 180, user="bob", path="/reports/mia.html", status=403,
               decision="forbid", reason="user not listed", bytes=None),
        record(WHEN + 240, user=None, share="link-1", path="/reports/mia.html"),
        record(WHEN + 300, path="/reports-old/mia.html"),
        record(WHEN + 3600, path="/staff/grades.html", rule="/staff/"),
    )  # fmt: skip


@pytest.fixture
def config(tmp_path: Path, trail: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gate.toml naming the trail by a relative path, and found by default."""
    path = tmp_path / "gate.toml"
    path.write_text('[trail]\nfile = "trail.jsonl"\n', encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def test_path_shows_who_read_what(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--path", "/reports/") == 0

    rows = table(capsys.readouterr().out)
    assert rows[0] == ["time", "(UTC)", "who", "client", "method", "status",
                       "decision", "path"]  # fmt: skip
    assert [row[2:] for row in rows[1:]] == [
        ["alice", "203.0.113.7", "GET", "200", "allow", "/reports/mia.html"],
        ["bob", "198.51.100.4", "GET", "200", "allow", "/reports/"],
        ["bob", "203.0.113.7", "GET", "403", "forbid", "/reports/mia.html"],
        ["share:link-1", "203.0.113.7", "GET", "200", "allow", "/reports/mia.html"],
    ]
    assert rows[1][:2] == ["2027-01-15", "08:01:00"]


def test_columns_line_up(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("--path", "/reports/")

    lines = capsys.readouterr().out.splitlines()
    starts = {line.index("/reports") for line in lines[1:]}
    assert starts == {lines[0].index("path")}


def test_path_without_slash_matches_the_folder_by_segments(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--path", "/reports")

    paths = [row[-1] for row in table(capsys.readouterr().out)[1:]]
    assert "/reports-old/mia.html" not in paths
    assert len(paths) == 4


def test_user_shows_their_reading_and_signing_in(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--user", "alice")

    rows = table(capsys.readouterr().out)[1:]
    assert [(row[6], row[-1]) for row in rows] == [
        ("login", "-"),
        ("allow", "/reports/mia.html"),
        ("allow", "/reports-old/mia.html"),
        ("allow", "/staff/grades.html"),
    ]


def test_share_shows_what_a_link_opened(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--share", "link-1")

    [row] = table(capsys.readouterr().out)[1:]
    assert row[2] == "share:link-1" and row[-1] == "/reports/mia.html"


def test_since_and_until_take_dates_and_times(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run("--since", "2027-01-15T08:02", "--until", "2027-01-15T08:05:00Z")

    rows = table(capsys.readouterr().out)[1:]
    assert [row[1] for row in rows] == ["08:02:00", "08:03:00", "08:04:00"]


def test_since_takes_a_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    trail = write(
        tmp_path / "recent.jsonl",
        record(now - 3 * 3600, path="/old.html"),
        record(now - 3600, path="/new.html"),
    )

    run("--file", str(trail), "--since", "2h")

    assert [row[-1] for row in table(capsys.readouterr().out)[1:]] == ["/new.html"]


def test_json_prints_the_records_as_json_lines(
    config: Path, trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--path", "/staff/", "--json") == 0

    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        record(WHEN + 3600, path="/staff/grades.html", rule="/staff/")
    ]


def test_json_prints_nothing_when_nothing_matches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--user", "nobody", "--json") == 0

    assert capsys.readouterr().out == ""


def test_table_says_when_nothing_matches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--user", "nobody") == 0

    assert capsys.readouterr().out == "no records match\n"


def test_rotated_files_are_read_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = write(tmp_path / "t.jsonl", record(WHEN, path="/today.html"))
    old = json.dumps(record(WHEN - 86400, path="/yesterday.html")) + "\n"
    with gzip.open(tmp_path / "t.jsonl.1.gz", "wt") as file:
        file.write(old)

    run("--file", str(trail))
    everything = [row[-1] for row in table(capsys.readouterr().out)[1:]]
    run("--file", str(trail), "--no-rotated")
    current = [row[-1] for row in table(capsys.readouterr().out)[1:]]

    assert everything == ["/yesterday.html", "/today.html"]
    assert current == ["/today.html"]


def test_control_characters_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name typed at a failed sign-in must not rewrite the terminal."""
    trail = write(
        tmp_path / "t.jsonl",
        record(event="login-failed", user="\x1b[2Jmallory", path=None),
    )

    run("--file", str(trail))

    output = capsys.readouterr().out
    assert "\x1b" not in output
    assert "\\x1b[2Jmallory" in output


def test_skipped_lines_are_counted_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = write(tmp_path / "t.jsonl", record())
    with open(trail, "a") as file:
        file.write('{"time":"2027-01-15T08:01:00Z","ev')

    assert run("--file", str(trail)) == 0

    captured = capsys.readouterr()
    assert len(table(captured.out)) == 2
    assert captured.err == (
        "static-gate: skipped 1 unreadable line(s) of the trail "
        "(a line cut short by a crash, say)\n"
    )


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``static-gate audit --json | head -1`` shows no traceback."""
    trail = write(tmp_path / "t.jsonl", *[record(WHEN + n) for n in range(20000)])
    script = (
        "import sys; from static_gate.audit_cli import add_audit_command; "
        "import argparse; p = argparse.ArgumentParser(); "
        "c = p.add_subparsers(); w = argparse.ArgumentParser(add_help=False); "
        "w.add_argument('--config'); add_audit_command(c, w); "
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))"
    )
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as closed:
        result = subprocess.run(
            [sys.executable, "-c", script, "audit", "--file", str(trail), "--json"],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )

    assert (result.returncode, result.stderr) == (0, "")


def test_config_without_a_trail_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[auth]\nusers_file = "users.txt"\n')

    assert run("--config", str(config)) == 2

    err = capsys.readouterr().err
    assert err.startswith("static-gate: ")
    assert "[trail] file is not set" in err and err.count("\n") == 1


def test_missing_config_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--config", str(tmp_path / "missing.toml")) == 2

    assert "cannot read the configuration file" in capsys.readouterr().err


def test_missing_trail_file_is_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--file", str(tmp_path / "none.jsonl")) == 1

    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since must be a date such as 2025-06-01"),
        (["--until", "2027-13-01"], "--until must be a date"),
        (["--since", "2h", "--until", "3h"], "--since is not before --until"),
        (["--path", "reports/"], "--path must start with '/'"),
        (["--path", "/a/../../b"], "cannot be a request path"),
        (["--path", "/a\\b"], "cannot be a request path"),
    ],
)
def test_bad_options_are_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(*argv) == 2

    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_option_is_exit_2(config: Path) -> None:
    assert run("--colour") == 2


# -- reading the options and the configuration ---------------------------------

NOW = datetime(2027, 1, 15, 12, 0, 30, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2h", NOW - 7200),
        ("1d12h", NOW - 36 * 3600),
        ("30m", NOW - 1800),
        ("2027-01-15", datetime(2027, 1, 15, tzinfo=timezone.utc)),
        ("2027-01-15T14:30", datetime(2027, 1, 15, 14, 30, tzinfo=timezone.utc)),
        ("2027-01-15 14:30:05", datetime(2027, 1, 15, 14, 30, 5, tzinfo=timezone.utc)),
        ("2027-01-15T14:30:00Z", datetime(2027, 1, 15, 14, 30, tzinfo=timezone.utc)),
        ("2027-01-15T14:30+02:00", datetime(2027, 1, 15, 12, 30, tzinfo=timezone.utc)),
        ("09:15", datetime(2027, 1, 15, 9, 15, tzinfo=timezone.utc)),
    ],
)
def test_moments_are_read_as_utc_unless_offset(
    text: str, moment: float | datetime
) -> None:
    expected = moment.timestamp() if isinstance(moment, datetime) else moment

    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "0h", "2027-01-32", "25:00", "-2h", "2027", "1430"]
)
def test_other_moments_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_moment(text, NOW)


def test_trail_file_is_relative_to_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "site" / "gate.toml"
    config.parent.mkdir()
    config.write_text('[trail]\nfile = "logs/trail.jsonl"\n')

    assert trail_file_setting(config) == tmp_path / "site" / "logs" / "trail.jsonl"


def test_trail_file_absolute_path_is_kept(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[trail]\nfile = "/var/log/static-gate/trail.jsonl"\n')

    assert trail_file_setting(config) == Path("/var/log/static-gate/trail.jsonl")


@pytest.mark.parametrize("text", ["", "[trail]\n", '[trail]\nfile = ""\n'])
def test_trail_file_not_set_is_none(tmp_path: Path, text: str) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(text)

    assert trail_file_setting(config) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[trail]\nfile = 5\n", r"\[trail\] file must be a path \(a string\), got 5"),
        ("[trail\n", "not valid TOML"),
    ],
)
def test_trail_file_setting_problems(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(text)

    with pytest.raises(ConfigError, match=message):
        trail_file_setting(config)
