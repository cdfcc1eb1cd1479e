"""The session commands, and the [state] and [throttle] settings."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST_HASHER, EnvironClient, FakeClock, signed_in
from static_gate import Gate, load_config
from static_gate.cli import main
from static_gate.config import CONFIG_ENV
from static_gate.errors import ConfigError
from static_gate.keys import SECRET_ENV
from static_gate.stores import session_handle
from static_gate.throttle import ThrottleConfig

COOKIE = "static_gate"
RULES = [{"path": "/public/", "allow": "anyone"}]
WriteConfig = Callable[..., Path]


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration or key from the caller; no gate.toml in the cwd."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*args: str) -> Result:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def config(write_config: WriteConfig) -> Path:
    return write_config(rules=RULES)


@pytest.fixture
def gate(config: Path, clock: FakeClock) -> Gate:
    # The commands list sessions open at the real time.
    clock.now = time.time()
    return Gate(load_config(config, environ={}), hasher=FAST_HASHER, clock=clock)


@pytest.fixture
def browsers(gate: Gate) -> dict[str, EnvironClient]:
    return {
        "alice": signed_in(gate, "alice", REMOTE_ADDR="192.0.2.1"),
        "alice-phone": signed_in(gate, "alice", REMOTE_ADDR="192.0.2.2"),
        "bob": signed_in(gate, "bob", REMOTE_ADDR="203.0.113.9"),
    }


def cookie_of(client: EnvironClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def handle_of(gate: Gate, client: EnvironClient) -> str:
    session = gate.sessions.load(cookie_of(client), gate.clock()).session
    assert session is not None
    return session_handle(session.id)


def status_of(browsers: dict[str, EnvironClient]) -> dict[str, int]:
    return {name: c.get("/report.html").status_code for name, c in browsers.items()}


# -- listing ------------------------------------------------------------------


def test_sessions_lists_open_sessions(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    result = cli("sessions", "--config", str(config))

    header, *rows = result.out.splitlines()
    assert result.code == 0
    assert header.split()[:3] == ["id", "user", "client"]
    assert [row.split()[:3] for row in rows] == [
        [handle_of(gate, browsers["alice"]), "alice", "192.0.2.1"],
        [handle_of(gate, browsers["alice-phone"]), "alice", "192.0.2.2"],
        [handle_of(gate, browsers["bob"]), "bob", "203.0.113.9"],
    ]


def test_sessions_show_no_cookie_value_or_session_id(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    result = cli("sessions", "--config", str(config))

    for client in browsers.values():
        value = cookie_of(client)
        payload = value.lstrip(".").rsplit(".", 1)[0]
        assert len(payload) > 20
        session = gate.sessions.load(value, gate.clock()).session
        assert session is not None
        for secret in (value, payload, session.id):
            assert secret not in result.out


def test_sessions_user_filters(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    result = cli("sessions", "--user", "bob", "--config", str(config))

    rows = result.out.splitlines()[1:]
    assert result.code == 0
    assert [row.split()[:3] for row in rows] == [
        [handle_of(gate, browsers["bob"]), "bob", "203.0.113.9"]
    ]


def test_sessions_says_when_none_are_open(cli: Cli, config: Path, gate: Gate) -> None:
    result = cli("sessions", "--config", str(config))

    assert (result.code, result.out) == (0, "no open sessions\n")


def test_signed_out_session_is_not_listed(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    gate.store.remove_session(handle_of(gate, browsers["bob"]))

    result = cli("sessions", "--config", str(config))

    assert "bob" not in result.out
    assert len(result.out.splitlines()) == 3


# -- ending sessions ----------------------------------------------------------


def test_revoke_ends_that_session(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    handle = handle_of(gate, browsers["alice-phone"])

    result = cli("sessions", "revoke", handle, "--config", str(config))

    assert (result.code, result.out) == (0, f"ended session {handle}\n")
    assert status_of(browsers) == {"alice": 200, "alice-phone": 303, "bob": 200}


def test_revoke_takes_the_config_before_the_subcommand(
    cli: Cli, config: Path, gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    """``sessions --config FILE revoke ID`` reads FILE like ``sessions --config``."""
    handle = handle_of(gate, browsers["alice-phone"])

    result = cli("sessions", "--config", str(config), "revoke", handle)

    assert (result.code, result.err) == (0, "")
    assert status_of(browsers) == {"alice": 200, "alice-phone": 303, "bob": 200}


@pytest.mark.parametrize("handle", ["nope", "0" * 24])
def test_revoke_of_an_unknown_id_fails_with_one_line(
    cli: Cli,
    config: Path,
    gate: Gate,
    browsers: dict[str, EnvironClient],
    handle: str,
) -> None:
    result = cli("sessions", "revoke", handle, "--config", str(config))

    assert result.code == 1
    assert result.err == f"static-gate: no open session has the id {handle!r}.\n"
    assert status_of(browsers) == {"alice": 200, "alice-phone": 200, "bob": 200}


def test_user_logout_ends_only_that_users_sessions(
    cli: Cli, config: Path, browsers: dict[str, EnvironClient]
) -> None:
    result = cli("user", "logout", "alice", "--config", str(config))

    assert (result.code, result.out) == (0, "ended 2 session(s) of alice\n")
    assert status_of(browsers) == {"alice": 303, "alice-phone": 303, "bob": 200}


def test_session_commands_need_no_signing_key(
    cli: Cli,
    write_config: WriteConfig,
    tmp_path: Path,
    gate: Gate,
    browsers: dict[str, EnvironClient],
) -> None:
    handle = handle_of(gate, browsers["bob"])
    config = write_config(rules=RULES, session=None)
    (tmp_path / "gate.secret").unlink()
    assert cli("check", "--config", str(config)).code == 2, "the key is really gone"

    listed = cli("sessions", "--config", str(config))
    revoked = cli("sessions", "revoke", handle, "--config", str(config))
    logged_out = cli("user", "logout", "alice", "--config", str(config))

    assert [listed.code, revoked.code, logged_out.code] == [0, 0, 0]
    assert handle in listed.out
    assert logged_out.out == "ended 2 session(s) of alice\n"
    assert status_of(browsers) == {"alice": 303, "alice-phone": 303, "bob": 303}


@pytest.mark.parametrize(
    "command",
    [["sessions"], ["sessions", "revoke", "0" * 24], ["user", "logout", "alice"]],
)
def test_unusable_store_fails_with_one_line(
    cli: Cli, write_config: WriteConfig, command: list[str]
) -> None:
    config = write_config(rules=RULES, state={"store": "sqlite:gate.toml/x.db"})

    result = cli(*command, "--config", str(config))

    assert result.code == 2
    assert result.out == ""
    [line] = result.err.splitlines()
    assert line.startswith("static-gate: [state] store cannot be used: ")


# -- [state] and [throttle] settings ------------------------------------------


def test_state_and_throttle_settings_are_read(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(
        state={"store": "sqlite:db/gate.db", "read_during_outage": True},
        throttle={
            "max_failures": 10,
            "window": "1h",
            "concurrent_checks": 4,
            "check_wait": "5s",
        },
    )

    config = load_config(path, environ={})

    assert config.state.store == f"sqlite:{tmp_path / 'db' / 'gate.db'}"
    assert config.state.read_during_outage is True
    assert config.state.folder == tmp_path / "state"
    assert config.throttle == ThrottleConfig(10, 3600, 4, 5)


def test_state_and_throttle_defaults(write_config: WriteConfig) -> None:
    config = load_config(write_config(), environ={})

    assert (config.state.store, config.state.read_during_outage) == ("sqlite", False)
    assert config.throttle == ThrottleConfig(5, 900, 1, 2)


DURATION = (
    'must be a duration such as "30m", got {}; '
    "use a whole number followed by s, m, h or d."
)

BAD_SETTINGS = [
    pytest.param(
        {"state": {"store": "postgres://db/1"}},
        '[state] store must be "sqlite", "sqlite:PATH", "memory" or a "redis://" '
        "URL, got 'postgres://db/1'.",
        id="unknown-store-kind",
    ),
    pytest.param(
        {"state": {"store": 5}},
        "[state] store must be a string, got 5.",
        id="store-not-text",
    ),
    pytest.param(
        {"state": {"read_during_outage": "yes"}},
        "[state] read_during_outage must be true or false, got 'yes'.",
        id="outage-not-a-flag",
    ),
    pytest.param(
        {"state": {"stor": "memory"}},
        "[state] stor is not a known key; [state] takes read_during_outage, store.",
        id="unknown-state-key",
    ),
    pytest.param(
        {"throttle": {"max_failures": 0}},
        "[throttle] max_failures must be a whole number of 1 or more, got 0.",
        id="max-failures-zero",
    ),
    pytest.param(
        {"throttle": {"max_failures": -3}},
        "[throttle] max_failures must be a whole number of 1 or more, got -3.",
        id="max-failures-negative",
    ),
    pytest.param(
        {"throttle": {"max_failures": "five"}},
        "[throttle] max_failures must be a whole number, got 'five'.",
        id="max-failures-text",
    ),
    pytest.param(
        {"throttle": {"max_failures": True}},
        "[throttle] max_failures must be a whole number of 1 or more, got True.",
        id="max-failures-flag",
    ),
    pytest.param(
        {"throttle": {"concurrent_checks": 0}},
        "[throttle] concurrent_checks must be a whole number of 1 or more, got 0.",
        id="no-check-slots",
    ),
    pytest.param(
        {"throttle": {"window": "15 minutes"}},
        "[throttle] window " + DURATION.format("'15 minutes'"),
        id="window-words",
    ),
    pytest.param(
        {"throttle": {"window": 900}},
        "[throttle] window " + DURATION.format("900"),
        id="window-number",
    ),
    pytest.param(
        {"throttle": {"window": "0m"}},
        "[throttle] window " + DURATION.format("'0m'"),
        id="window-zero",
    ),
    pytest.param(
        {"throttle": {"check_wait": "-1s"}},
        "[throttle] check_wait " + DURATION.format("'-1s'"),
        id="check-wait-negative",
    ),
    pytest.param(
        {"throttle": {"max_failure": 5}},
        "[throttle] max_failure is not a known key; [throttle] takes check_wait, "
        "concurrent_checks, max_failures, window.",
        id="unknown-throttle-key",
    ),
]


@pytest.mark.parametrize(("tables", "expected"), BAD_SETTINGS)
def test_bad_setting_is_reported(
    write_config: WriteConfig, tables: dict[str, Any], expected: str
) -> None:
    """One line naming the file, the table and the key."""
    path = write_config(**tables)

    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_config(path, environ={})

    assert caught.value.problems == (f"gate.toml: {expected}",)


# -- the command line never creates the store ----------------------------------


@pytest.mark.parametrize(
    "args",
    [["sessions"], ["user", "logout", "alice"], ["sessions", "revoke", "abc"]],
)
def test_session_commands_do_not_create_a_missing_store(
    cli: Cli, config: Path, args: list[str]
) -> None:
    """Run as root, they would leave a store the server could not write."""
    result = cli(*args, "--config", str(config))

    assert result.code == 2
    assert "does not exist yet" in result.err
    assert not (config.parent / "state").exists()


def test_check_tries_a_missing_store_and_leaves_nothing(cli: Cli, config: Path) -> None:
    result = cli("check", "--config", str(config))

    assert result.code == 0
    assert "made when the gate first starts" in result.out
    assert not (config.parent / "state").exists()
