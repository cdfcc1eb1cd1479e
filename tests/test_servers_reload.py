"""Live reload under a real multi-worker gunicorn, without a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from conftest import PASSWORDS, render_toml
from servers import (
    HttpClient,
    Server,
    gunicorn_server,
    has_module,
    require,
    sign_in,
    wait_until,
)
from static_gate.cli import main
from static_gate.credentials import Account, format_users
from static_gate.reload import CHECK_INTERVAL

REPORT = "/report.html"
WORKERS = 3
# Enough fresh connections that every worker serves some of them.
ROUNDS = 4 * WORKERS


@pytest.fixture
def gunicorn(
    write_config: Callable[..., Path], tmp_path: Path
) -> Iterator[tuple[Server, Path]]:
    require("gunicorn", has_module("gunicorn"), "pip install -e '.[test]'")
    config = write_config(rules=[{"path": "/public/", "allow": "anyone"}])
    server = gunicorn_server(
        config, tmp_path / "logs", workers=WORKERS, worker_class="sync"
    )
    server.start()
    try:
        yield server, config
    finally:
        server.stop()


def statuses(server: Server, cookie: str) -> set[int]:
    return {
        HttpClient(server.url, cookies={"static_gate": cookie}).get(REPORT).status
        for _ in range(ROUNDS)
    }


def rewrite(config: Path, text: str) -> None:
    """Replace the file in one step, as editors and deploy tools do."""
    new = config.with_name("gate.toml.new")
    new.write_text(text, encoding="utf-8")
    new.replace(config)


def test_every_worker_follows_an_edited_configuration(
    gunicorn: tuple[Server, Path],
) -> None:
    server, config = gunicorn
    cookie = sign_in(server.url, "alice", PASSWORDS["alice"])
    assert statuses(server, cookie) == {200}

    closed = {"path": REPORT, "allow": "nobody"}
    rewrite(config, config.read_text() + render_toml({"rules": [closed]}))

    wait_until(
        lambda: statuses(server, cookie) == {403},
        CHECK_INTERVAL + 10,
        "every worker to refuse the report",
    )
    assert statuses(server, cookie) == {403}


def test_a_broken_edit_changes_nothing_but_a_log_line(
    gunicorn: tuple[Server, Path],
) -> None:
    server, config = gunicorn
    cookie = sign_in(server.url, "alice", PASSWORDS["alice"])

    rewrite(config, config.read_text() + '[session]\nlifetime = "soon"\n')

    def refused() -> bool:
        # Each worker looks at the file when a request comes in.
        assert statuses(server, cookie) == {200}
        return "configuration not reloaded" in server.log_tail(200)

    wait_until(refused, CHECK_INTERVAL + 10, "the refusal in the log")
    assert statuses(server, cookie) == {200}
    assert "Traceback" not in server.log_tail(200)


def test_a_changed_password_ends_the_session_on_every_worker(
    gunicorn: tuple[Server, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    server, config = gunicorn
    cookie = sign_in(server.url, "alice", PASSWORDS["alice"])
    assert statuses(server, cookie) == {200}

    monkeypatch.setattr("sys.stdin", io.StringIO("a-new-password-for-alice\n"))
    assert main(["user", "passwd", "alice", "--config", str(config)]) == 0
    capsys.readouterr()

    wait_until(
        lambda: statuses(server, cookie) == {303},
        10,
        "every worker to end alice's session",
    )


def test_a_revoked_share_link_dies_on_every_worker(
    gunicorn: tuple[Server, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    server, config = gunicorn
    assert main(["share", REPORT, "--expires", "1h", "--config", str(config)]) == 0
    link = re.search(r"/_gate/share/\S+", capsys.readouterr().out)
    assert link
    opener = HttpClient(server.url)
    assert opener.request("POST", link.group(0)).status == 303
    cookies = dict(opener.cookies)

    def statuses_with_link() -> set[int]:
        return {
            HttpClient(server.url, cookies=cookies).get(REPORT).status
            for _ in range(ROUNDS)
        }

    assert statuses_with_link() == {200}
    assert main(["share", "list", "--config", str(config)]) == 0
    share_id = capsys.readouterr().out.splitlines()[1].split()[0]

    assert main(["share", "revoke", share_id, "--config", str(config)]) == 0

    assert statuses_with_link() == {410}


def test_a_broken_users_file_changes_nothing_but_a_log_line(
    gunicorn: tuple[Server, Path],
) -> None:
    server, config = gunicorn
    users = config.with_name("users.txt")
    # Hashes with the production parameters: a sign-in must not rewrite the
    # file (upgrading a cheap test hash) while the broken edit is in place.
    accounts = {
        name: Account(name, PasswordHasher().hash(PASSWORDS[name]))
        for name in ("alice", "bob")
    }
    rewrite(users, format_users(accounts))
    cookie = sign_in(server.url, "alice", PASSWORDS["alice"])
    # Every worker has read the good file once it accepts the new session.
    wait_until(lambda: statuses(server, cookie) == {200}, 10, "all workers")

    rewrite(users, users.read_text() + "this line is not a user\n")

    def refused() -> bool:
        assert statuses(server, cookie) == {200}
        return "users file not reloaded" in server.log_tail(200)

    wait_until(refused, 10, "the refusal in the log")
    assert sign_in(server.url, "bob", PASSWORDS["bob"])
