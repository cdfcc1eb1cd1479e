"""The ``static-gate`` command, run in-process and, for serving, for real."""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from conftest import FAST_HASHER, KEY, PASSWORDS, SHARED_PASSWORD
from static_gate import load_config
from static_gate.cli import main
from static_gate.config import CONFIG_ENV
from static_gate.credentials import read_users_file
from static_gate.keys import SECRET_ENV, parse_keys

NEW_PASSWORD = "a-new-long-password"
RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/admins/", "users": ["carol"]},
]
WAIT_SECONDS = 10.0


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the caller's configuration and key out of every test."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``main`` with *stdin* as its (non-terminal) standard input."""

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config(rules=RULES)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mode)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def verifies(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, password)
    except VerificationError:
        return False


# -- init ---------------------------------------------------------------


def test_init_creates_config_key_users_and_site(cli: Cli, tmp_path: Path) -> None:
    result = cli("init", "gate")

    folder = tmp_path / "gate"
    assert result.code == 0
    assert (folder / "gate.toml").is_file()
    assert (folder / "users.txt").is_file()
    assert (folder / "site" / "index.html").is_file()
    assert stat.S_IMODE((folder / "gate.secret").stat().st_mode) == 0o600
    assert "Next:" in result.out
    assert "static-gate check --config gate/gate.toml" in result.out
    assert "user add NAME" in result.out
    assert result.err == ""


def test_init_keeps_the_users_file_from_other_users(cli: Cli, tmp_path: Path) -> None:
    cli("init", "gate")

    mode = (tmp_path / "gate" / "users.txt").stat().st_mode
    assert mode & stat.S_IRWXO == 0


def test_init_writes_a_config_that_check_accepts(cli: Cli) -> None:
    cli("init", "gate")

    result = cli("check", "--config", "gate/gate.toml")

    assert result.code == 0, result.err
    assert "valid" in result.out


def test_init_refuses_to_overwrite(cli: Cli, tmp_path: Path) -> None:
    cli("init", "gate")
    before = snapshot(tmp_path / "gate")

    result = cli("init", "gate")

    assert result.code == 1
    assert len(result.err_lines) == 1
    assert "already exists" in result.err
    assert snapshot(tmp_path / "gate") == before


def test_init_with_one_existing_file_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()
    (folder / "gate.secret").write_text(KEY + "\n", encoding="utf-8")

    result = cli("init", "gate")

    assert result.code == 1
    assert "gate.secret" in result.err
    assert sorted(path.name for path in folder.iterdir()) == ["gate.secret"]


def test_init_shared_password_stores_a_hash_that_loads(
    cli: Cli, tmp_path: Path
) -> None:
    result = cli("init", "gate", "--shared-password", stdin=SHARED_PASSWORD + "\n")

    text = (tmp_path / "gate" / "gate.toml").read_text(encoding="utf-8")
    config = load_config(tmp_path / "gate" / "gate.toml", environ={})
    assert result.code == 0, result.err
    assert SHARED_PASSWORD not in text
    assert config.auth.shared_password_hash is not None
    assert config.auth.shared_password_hash in text
    assert verifies(config.auth.shared_password_hash, SHARED_PASSWORD)
    assert config.auth.users_file is None
    assert not (tmp_path / "gate" / "users.txt").exists()


def test_init_shared_password_too_short_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    result = cli("init", "gate", "--shared-password", stdin="short\n")

    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "at least 12 characters" in result.err
    assert not (tmp_path / "gate" / "gate.toml").exists()
    assert not (tmp_path / "gate" / "gate.secret").exists()


# -- secret and hash-password ----------------------------------------------


def test_secret_prints_a_new_long_key_each_time(cli: Cli) -> None:
    first = cli("secret").out.strip()
    second = cli("secret").out.strip()

    assert len(first.encode()) >= 32
    assert first != second
    assert parse_keys(first, "test")[0].value == first.encode()


def test_hash_password_prints_a_hash_that_verifies(cli: Cli) -> None:
    result = cli("hash-password", stdin=SHARED_PASSWORD + "\n")

    password_hash = result.out.strip()
    assert result.code == 0
    assert password_hash.startswith("$argon2id$")
    assert SHARED_PASSWORD not in result.out
    assert verifies(password_hash, SHARED_PASSWORD)


@pytest.mark.parametrize("password", ["", "short", "eleven-char"])
def test_hash_password_refuses_a_short_password(cli: Cli, password: str) -> None:
    result = cli("hash-password", stdin=password + "\n")

    assert result.code == 2
    assert result.out == ""
    assert result.err_lines == [
        "static-gate: the password must be at least 12 characters long; "
        "nothing was changed."
    ]


# -- user -----------------------------------------------------------------


def test_user_add_then_list_shows_the_user(cli: Cli, config: Path) -> None:
    added = cli(
        *"user add dave --group staff --config".split(),
        str(config),
        stdin=NEW_PASSWORD + "\n",
    )

    listing = cli("user", "list", "--config", str(config))

    assert added.code == 0, added.err
    assert listing.code == 0
    assert "dave\tstaff" in listing.out.splitlines()
    assert "bob\t-" in listing.out.splitlines()
    account = read_users_file(config.parent / "users.txt")["dave"]
    assert verifies(account.password_hash, NEW_PASSWORD)


def test_user_add_takes_several_groups(cli: Cli, config: Path) -> None:
    cli(
        *"user add dave --group staff --group admins --config".split(),
        str(config),
        stdin=NEW_PASSWORD + "\n",
    )

    listing = cli("user", "list", "--config", str(config))

    assert "dave\tadmins, staff" in listing.out.splitlines()


def test_user_add_twice_is_refused(cli: Cli, config: Path) -> None:
    users = config.parent / "users.txt"
    before = users.read_bytes()

    result = cli("user", "add", "alice", "--config", str(config), stdin="x" * 20)

    assert result.code == 1
    assert len(result.err_lines) == 1
    assert "'alice' already exists" in result.err
    assert users.read_bytes() == before


def test_user_add_with_a_short_password_adds_nobody(cli: Cli, config: Path) -> None:
    result = cli("user", "add", "dave", "--config", str(config), stdin="short\n")

    assert result.code == 2
    assert "dave" not in read_users_file(config.parent / "users.txt")


@pytest.mark.parametrize("name", [".dave", "da ve", "dave:x", "d" * 65, ""])
def test_user_add_refuses_an_invalid_name(cli: Cli, config: Path, name: str) -> None:
    result = cli("user", "add", name, "--config", str(config), stdin=NEW_PASSWORD)

    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "not a valid user name" in result.err


def test_user_add_refuses_an_invalid_group(cli: Cli, config: Path) -> None:
    result = cli(
        "user", "add", "dave", "--group", "st aff", "--config", str(config), stdin="x"
    )

    assert result.code == 2
    assert "not a valid group name" in result.err


def test_user_add_refuses_the_shared_password_user_name(
    cli: Cli, write_config: Callable[..., Path]
) -> None:
    """A user named like the shared password's user would make the
    configuration unloadable, so the command must refuse it."""
    config = write_config(auth={"shared_password_hash": FAST_HASHER.hash("x" * 16)})
    users = config.parent / "users.txt"
    before = users.read_bytes()

    result = cli("user", "add", "shared", "--config", str(config), stdin=NEW_PASSWORD)

    assert result.code != 0
    assert users.read_bytes() == before
    assert cli("check", "--config", str(config)).code == 0


def test_user_passwd_changes_the_hash(cli: Cli, config: Path) -> None:
    users = config.parent / "users.txt"
    old = read_users_file(users)["alice"]

    result = cli("user", "passwd", "alice", "--config", str(config), stdin=NEW_PASSWORD)

    new = read_users_file(users)["alice"]
    assert result.code == 0, result.err
    assert new.password_hash != old.password_hash
    assert verifies(new.password_hash, NEW_PASSWORD)
    assert not verifies(new.password_hash, PASSWORDS["alice"])
    assert new.groups == old.groups


def test_user_passwd_of_an_unknown_user_fails(cli: Cli, config: Path) -> None:
    result = cli("user", "passwd", "dave", "--config", str(config), stdin=NEW_PASSWORD)

    assert result.code == 1
    assert "'dave' does not exist" in result.err


def test_user_remove_removes_only_that_user(cli: Cli, config: Path) -> None:
    result = cli("user", "remove", "bob", "--config", str(config))

    listing = cli("user", "list", "--config", str(config))
    assert result.code == 0
    assert [line.split("\t")[0] for line in listing.out.splitlines()] == [
        "alice",
        "carol",
    ]


def test_user_remove_of_an_unknown_user_fails(cli: Cli, config: Path) -> None:
    result = cli("user", "remove", "dave", "--config", str(config))

    assert result.code == 1
    assert len(result.err_lines) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["add", "dave"],
        ["passwd", "alice"],
        ["remove", "alice"],
    ],
)
def test_user_commands_need_a_users_file(
    cli: Cli, tmp_path: Path, args: list[str]
) -> None:
    config = tmp_path / "shared.toml"
    config.write_text(
        f'[auth]\nshared_password_hash = "{FAST_HASHER.hash("x" * 16)}"\n',
        encoding="utf-8",
    )

    result = cli("user", *args, "--config", str(config), stdin=NEW_PASSWORD)

    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "shared.toml" in result.err
    assert "[auth] users_file is not set" in result.err


# -- check ----------------------------------------------------------------


def test_check_prints_the_settings_and_rules(cli: Cli, config: Path) -> None:
    result = cli("check", "--config", str(config))

    lines = result.out.splitlines()
    assert result.code == 0
    assert lines[0] == f"{config}: valid"
    assert "(3 users)" in result.out
    assert any(line.split() == ["/public/", "anyone"] for line in lines)
    assert any(line.split() == ["/staff/", "only", "group", "staff"] for line in lines)
    assert any(line.split() == ["/admins/", "only", "user", "carol"] for line in lines)


def test_check_says_who_makes_share_links(
    cli: Cli, write_config: Callable[..., Path]
) -> None:
    config = write_config(share={"creators": ["staff"], "max_expires": "7d"})

    result = cli("check", "--config", str(config))

    assert (
        "  shares    made at the shell and on /_gate/shares by group(s) staff, "
        "lasting 7d at most"
    ) in result.out.splitlines()


def test_check_reads_the_config_named_in_the_environment(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config))

    result = cli("check")

    assert result.code == 0
    assert str(config) in result.out


def test_check_reports_each_problem_on_one_line(
    cli: Cli, write_config: Callable[..., Path]
) -> None:
    config = write_config(session={"lifetime": "thirty", "idle_timeout": "1 week"})

    result = cli("check", "--config", str(config))

    assert result.code == 2
    assert result.out == ""
    assert result.err_lines == [
        'static-gate: gate.toml: [session] lifetime must be a duration such as "30m", '
        "got 'thirty'; use a whole number followed by s, m, h or d.",
        "static-gate: gate.toml: [session] idle_timeout must be a duration such as "
        "\"30m\", got '1 week'; use a whole number followed by s, m, h or d.",
    ]


def test_check_names_file_and_key_of_every_problem(
    cli: Cli, write_config: Callable[..., Path]
) -> None:
    config = write_config(
        static={"follow_symlinks": "yes"},
        session={"cookie_name": "__bad"},
        rules=[{"path": "/staff/", "groups": ["st aff"]}],
    )

    result = cli("check", "--config", str(config))

    assert result.code == 2
    assert len(result.err_lines) == 3
    assert all(
        line.startswith("static-gate: gate.toml: [") for line in result.err_lines
    )
    assert "[static] follow_symlinks" in result.err
    assert "[session] cookie_name" in result.err
    assert "[[rules]] 1 groups" in result.err
    assert "Traceback" not in result.err


def test_check_of_a_missing_config_fails(cli: Cli, tmp_path: Path) -> None:
    result = cli("check", "--config", "missing.toml")

    assert result.code == 2
    assert result.err_lines == [
        f"static-gate: {tmp_path / 'missing.toml'}: cannot read the configuration "
        "file (No such file or directory)."
    ]


def test_check_without_config_looks_for_gate_toml(cli: Cli) -> None:
    result = cli("check")

    assert result.code == 2
    assert "gate.toml" in result.err


def test_check_of_invalid_toml_fails_on_one_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text("[static\n", encoding="utf-8")

    result = cli("check")

    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "not valid TOML" in result.err


# -- explain --------------------------------------------------------------


def test_explain_shows_the_rule_that_lets_a_user_in(cli: Cli, config: Path) -> None:
    result = cli("explain", "/staff/x", "--user", "alice", "--config", str(config))

    assert result.code == 0
    assert "rule      '/staff/', which lets in only group staff" in result.out
    assert "decision  allow: group listed" in result.out


def test_explain_shows_a_refusal_for_an_unlisted_user(cli: Cli, config: Path) -> None:
    result = cli("explain", "/staff/x", "--user", "bob", "--config", str(config))

    assert result.code == 0
    assert "decision  forbid: user not listed" in result.out


def test_explain_without_user_asks_for_sign_in(cli: Cli, config: Path) -> None:
    result = cli("explain", "/report.html", "--config", str(config))

    assert "user      (not signed in)" in result.out
    assert "rule      none; the default applies" in result.out
    assert "decision  login: sign-in required" in result.out


def test_explain_shows_the_canonical_path_first(cli: Cli, config: Path) -> None:
    result = cli("explain", "/public//a/../b", "--config", str(config))

    assert "is redirected to '/public/b' first" in result.out
    assert "decision  allow: public path" in result.out


def test_explain_takes_a_path_that_is_not_ascii(cli: Cli, config: Path) -> None:
    """The path is typed as text, not as the Latin-1 string WSGI passes on."""
    result = cli("explain", "/rapport-é.html", "--config", str(config))

    assert result.code == 0
    assert "path      /rapport-é.html\n" in result.out
    assert "decision  login: sign-in required" in result.out


@pytest.mark.parametrize(
    "path",
    ["/../etc/passwd", "/staff/../../x", "/a\\b", "/%2e%2e/x", "/a\x00b", "/a;b=c"],
)
def test_explain_refuses_hostile_paths(cli: Cli, config: Path, path: str) -> None:
    result = cli("explain", path, "--config", str(config))

    assert result.code == 0
    assert "decision  refused with 400" in result.out
    assert "allow" not in result.out


def test_explain_of_an_unknown_user_fails(cli: Cli, config: Path) -> None:
    result = cli("explain", "/staff/x", "--user", "dave", "--config", str(config))

    assert result.code == 1
    assert result.err_lines == ["static-gate: user 'dave' does not exist."]


def test_explain_says_the_gate_pages_are_open_to_anyone(cli: Cli, config: Path) -> None:
    """The login page is served before any rule is asked, so nobody is
    sent to sign in to see it."""
    result = cli("explain", "/_gate/login", "--config", str(config))

    assert result.code == 0
    assert "decision  allow" in result.out


# -- usage errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nonsense"],
        ["user"],
        ["explain"],
        ["serve", "--port", "eighty"],
        ["check", "--bogus"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args)

    assert result.code == 2
    assert "usage: static-gate" in result.err


# -- the installed command, for real --------------------------------------


def child_environment() -> dict[str, str]:
    environ = dict(os.environ)
    environ.pop(CONFIG_ENV, None)
    environ.pop(SECRET_ENV, None)
    return environ


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "static_gate", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=child_environment(),
        timeout=60,
    )


def test_module_entry_point_checks_a_config(config: Path) -> None:
    result = run_module("check", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert f"{config}: valid" in result.stdout


def test_module_entry_point_reports_errors_without_traceback(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(session={"lifetime": "thirty"})

    result = run_module("check", "--config", str(config))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "[session] lifetime" in result.stderr


def test_console_script_runs() -> None:
    script = Path(sys.executable).with_name("static-gate")
    if not script.exists():
        pytest.skip("the static-gate script is not installed beside this Python")

    result = subprocess.run(
        [str(script), "secret"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0
    assert len(result.stdout.strip()) >= 32


# -- serve ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until_serving(server: subprocess.Popen[str], port: int, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}: {log.read_text()}")
        if accepts_connections(port):
            return
        time.sleep(0.1)

    pytest.fail(f"serve did not listen on port {port} within {WAIT_SECONDS} s")


def reset_sigint() -> None:
    # A background job of a non-interactive shell inherits an ignored
    # SIGINT; the server must get the default so that SIGINT stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -m static_gate serve``; stop it after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        with (
            open(tmp_path / "serve.out", "w") as out,
            open(tmp_path / "serve.err", "w") as err,
        ):
            server = subprocess.Popen(
                [sys.executable, "-m", "static_gate", "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                env=child_environment(),
                preexec_fn=reset_sigint,
            )
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=WAIT_SECONDS)


def get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_serve_guards_pages_and_stops_on_sigint(
    serve: Callable[..., subprocess.Popen[str]], config: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = serve("--config", str(config), "--port", str(port), "--host", "127.0.0.1")
    wait_until_serving(server, port, tmp_path / "serve.err")

    protected = get(port, "/report.html")
    public = get(port, "/public/index.html")
    server.send_signal(signal.SIGINT)
    status = server.wait(timeout=WAIT_SECONDS)

    out = (tmp_path / "serve.out").read_text()
    err = (tmp_path / "serve.err").read_text()
    assert protected.status == 303
    assert protected.getheader("Location") == "/_gate/login?next=%2Freport.html"
    assert public.status == 200
    for response in (protected, public):
        server_header = response.getheader("Server") or ""
        assert not any(character.isdigit() for character in server_header)
        assert "waitress" not in server_header.lower()
    assert f"static-gate: serving on http://127.0.0.1:{port}/" in out
    assert status == 0
    assert "Traceback" not in err


def test_serve_with_a_broken_config_exits_2(
    serve: Callable[..., subprocess.Popen[str]],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    config = write_config(session={"lifetime": "thirty"})
    port = free_port()

    server = serve("--config", str(config), "--port", str(port))
    status = server.wait(timeout=60)

    err = (tmp_path / "serve.err").read_text()
    assert status == 2
    assert "Traceback" not in err
    assert err.splitlines() == [
        'static-gate: gate.toml: [session] lifetime must be a duration such as "30m", '
        "got 'thirty'; use a whole number followed by s, m, h or d."
    ]
    assert not accepts_connections(port)
