"""The ``static-gate share`` commands, wired into a parser as cli.py does."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import KEY
from static_gate.config import CONFIG_ENV
from static_gate.errors import ConfigError, StaticGateError, UsageError
from static_gate.keys import SECRET_ENV, SecretKey
from static_gate.share_cli import add_share_commands
from static_gate.shares import read_token
from static_gate.stores import ShareRecord
from static_gate.stores.sqlite import SqliteStore

KEYS = [SecretKey(KEY.encode())]
DAY = 86400
RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/admins/", "allow": "nobody"},
]
LINK = re.compile(r"/_gate/share/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


def run(argv: list[str]) -> int:
    """Parse and run *argv* the way ``static-gate`` does, errors included."""
    parser = argparse.ArgumentParser(prog="static-gate")
    commands = parser.add_subparsers(title="commands", required=True)
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument("--config", metavar="FILE")
    add_share_commands(commands, with_config)
    try:
        args = parser.parse_args(argv)
        result: int = args.handler(args)
    except SystemExit as exit:
        return 0 if exit.code is None else int(exit.code)
    except (ConfigError, UsageError) as error:
        print(f"static-gate: {error}", file=sys.stderr)
        return 2
    except StaticGateError as error:
        print(f"static-gate: {error}", file=sys.stderr)
        return 1

    return result


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration or key from the caller; no gate.toml in the cwd."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config(rules=RULES)


@pytest.fixture
def store(config: Path) -> Iterator[SqliteStore]:
    """The store the gate would have made when it first started."""
    opened = SqliteStore(config.parent / "state" / "static-gate.sqlite3")
    opened.check()
    yield opened
    opened.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], config: Path) -> Cli:
    def call(*args: str) -> Result:
        code = run([*args, "--config", str(config)])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def shared(store: SqliteStore, result: Result) -> ShareRecord:
    """Return the stored link that *result* printed."""
    match = LINK.fullmatch(result.out.strip())
    assert match, result.out
    share_id = read_token(KEYS, match.group(1))
    assert share_id is not None
    share = store.get_share(share_id, time.time())
    assert share is not None
    return share


# -- making a link --------------------------------------------------------------


def test_share_prints_a_link_to_the_file(cli: Cli, store: SqliteStore) -> None:
    result = cli("share", "/report.html", "--expires", "7d")

    share = shared(store, result)
    assert result.code == 0
    assert share.path == "/report.html"
    assert share.created_by.startswith("@")
    assert share.expires - share.created == 7 * DAY
    assert abs(share.created - time.time()) < 60
    assert (share.uses_left, share.note) == (None, "")
    assert f"made share link {share.id} for /report.html" in result.err
    assert "uses left no limit" in result.err


def test_share_keeps_uses_and_note(cli: Cli, store: SqliteStore) -> None:
    result = cli(
        "share", "/staff/", "--expires", "12h", "--uses", "3", "--note", "for Dana "
    )

    share = shared(store, result)
    assert (share.path, share.uses_left, share.note) == ("/staff/", 3, "for Dana")
    assert share.expires - share.created == 12 * 3600


def test_share_without_base_url_prints_a_relative_link(
    cli: Cli, store: SqliteStore
) -> None:
    result = cli("share", "/report.html", "--expires", "1d")

    assert result.out.startswith("/_gate/share/")
    assert "set [share] base_url" in result.err


def test_share_prints_a_whole_link_with_base_url(
    cli: Cli, store: SqliteStore, write_config: Callable[..., Path]
) -> None:
    write_config(rules=RULES, share={"base_url": "https://example.org/reports/"})

    result = cli("share", "/report.html", "--expires", "1d")

    assert result.out.startswith("https://example.org/reports/_gate/share/")
    assert "base_url" not in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/report.html"], "needs --expires, such as --expires 7d"),
        (["/staff", "--expires", "1d"], "is a folder; write '/staff/'"),
        (["/report.html/", "--expires", "1d"], "is a file; write '/report.html'"),
        (["/missing.html", "--expires", "1d"], "does not exist"),
        (["/.htaccess", "--expires", "1d"], "does not exist"),
        (["report.html", "--expires", "1d"], "does not start with a slash"),
        (["/a/../report.html", "--expires", "1d"], "write '/report.html'"),
        (["/", "--expires", "1d"], "whole site cannot be shared"),
        (["/_gate/login", "--expires", "1d"], "gate's own pages"),
        (["/report.html", "--expires", "31d"], "30d at most ([share] max_expires)"),
        (["/report.html", "--expires", "soon"], 'such as "7d"'),
        (["/report.html", "--expires", "1d", "--uses", "0"], "1 or more"),
        (["/report.html", "--expires", "1d", "--note", "a\nb"], "one line"),
        (["/admins/keys.html", "--expires", "1d"], "closed to everyone"),
        (["/a b.html", "/c.html", "--expires", "1d"], "one PATH, got 2 words"),
    ],
)
def test_share_refuses_a_link_that_cannot_work(
    cli: Cli, store: SqliteStore, args: list[str], message: str
) -> None:
    result = cli("share", *args)

    assert result.code == 2
    assert message in result.err
    assert result.out == ""
    assert store.list_shares(time.time()) == []


def test_share_needs_the_signing_key(
    cli: Cli, config: Path, store: SqliteStore
) -> None:
    (config.parent / "gate.secret").unlink()

    result = cli("share", "/report.html", "--expires", "1d")

    assert result.code == 2
    assert "secret" in result.err
    assert store.list_shares(time.time()) == []


def test_share_needs_a_store_the_gate_made(cli: Cli, config: Path) -> None:
    result = cli("share", "/report.html", "--expires", "1d")

    assert result.code == 2
    assert "[state] store cannot be used" in result.err
    assert "created when the gate first starts" in result.err
    assert not (config.parent / "state").exists()


@pytest.mark.parametrize(
    "args", [["/report.html", "--expires", "1d"], ["list"], ["revoke", "A" * 22]]
)
def test_share_refuses_a_memory_store(
    capsys: pytest.CaptureFixture[str],
    write_config: Callable[..., Path],
    args: list[str],
) -> None:
    """A link made in this process's memory would never reach the server."""
    config = write_config(rules=RULES, state={"store": "memory"})

    code = run(["share", *args, "--config", str(config)])

    out, err = capsys.readouterr()
    assert code == 2
    assert '[state] store is "memory"' in err
    assert out == ""


# -- listing --------------------------------------------------------------------


def test_share_list_shows_links_but_never_a_link_itself(
    cli: Cli, store: SqliteStore
) -> None:
    made = [
        cli("share", "/report.html", "--expires", "1d", "--note", "for the board"),
        cli("share", "/staff/", "--expires", "2d", "--uses", "2"),
    ]
    shares = [shared(store, result) for result in made]

    result = cli("share", "list")

    header, *lines = result.out.splitlines()
    rows = {line.split()[0]: line for line in lines}
    report, staff = (rows[share.id] for share in shares)
    assert result.code == 0
    assert header.split()[:4] == ["id", "expires", "(UTC)", "uses"]
    assert len(lines) == 2
    assert report.endswith("/report.html  (for the board)")
    assert "no limit" in report
    assert staff.split()[3] == "2"
    assert staff.endswith("/staff/")
    assert shares[0].created_by in report
    for made_result in made:
        signature = made_result.out.strip().rsplit(".", 1)[1]
        assert signature not in result.out


def test_share_list_without_links(cli: Cli, store: SqliteStore) -> None:
    result = cli("share", "list")

    assert (result.code, result.out) == (0, "no live share links\n")


def test_share_list_needs_no_signing_key(
    cli: Cli, config: Path, store: SqliteStore
) -> None:
    cli("share", "/report.html", "--expires", "1d")
    (config.parent / "gate.secret").unlink()

    result = cli("share", "list")

    assert result.code == 0
    assert "/report.html" in result.out


# -- revoking -------------------------------------------------------------------


def test_share_revoke_ends_the_link(cli: Cli, store: SqliteStore) -> None:
    kept = shared(store, cli("share", "/staff/", "--expires", "1d"))
    share = shared(store, cli("share", "/report.html", "--expires", "1d"))

    result = cli("share", "revoke", share.id)

    assert (result.code, result.out) == (0, f"revoked share link {share.id}\n")
    assert store.get_share(share.id, time.time()) is None
    assert store.get_share(kept.id, time.time()) is not None


def test_share_revoke_takes_the_link_itself(cli: Cli, store: SqliteStore) -> None:
    made = cli("share", "/report.html", "--expires", "1d")
    share = shared(store, made)

    result = cli("share", "revoke", "https://example.org" + made.out.strip())

    assert result.code == 0
    assert store.get_share(share.id, time.time()) is None


def test_share_revoke_of_an_unknown_link_fails(cli: Cli, store: SqliteStore) -> None:
    result = cli("share", "revoke", "A" * 22)

    assert result.code == 1
    assert f"no live share link has the id {'A' * 22!r}" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["revoke", "nope"], "is not a link id; 'static-gate share list' shows them"),
        (["revoke"], "give one link id"),
        (["revoke", "A" * 22, "B" * 22], "give one link id"),
        (["revoke", "A" * 22, "--expires", "1d"], "not 'share revoke'"),
        (["list", "--note", "x"], "not 'share list'"),
        (["list", "--uses", "2"], "not 'share list'"),
    ],
)
def test_share_list_and_revoke_refuse_bad_arguments(
    cli: Cli, store: SqliteStore, args: list[str], message: str
) -> None:
    result = cli("share", *args)

    assert result.code == 2
    assert message in result.err


def test_share_help_shows_the_three_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["share", "--help"]) == 0

    out = capsys.readouterr().out
    assert "static-gate share PATH --expires DURATION" in out
    assert "static-gate share list" in out
    assert "static-gate share revoke ID" in out
