"""Shared fixtures: a site tree, configurations, a fake clock and clients."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from werkzeug.test import Client, TestResponse

from static_gate import Gate, load_config
from static_gate.config import Config
from static_gate.credentials import Account, format_users

# The cheapest argon2 parameters; production uses argon2-cffi's defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

KEY = "k" * 48
PASSWORDS = {
    "alice": "alice-password-1",
    "bob": "bob-password-22",
    "carol": "carol-password-333",
}
GROUPS = {"alice": {"staff"}, "bob": set(), "carol": {"staff", "admins"}}
SHARED_PASSWORD = "shared-password-4444"


class BufferedClient(Client):
    """A test client that reads and closes every response body at once,
    as a WSGI server does, so no file stays open after a request."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        # Like a browser loading a page, which is what counts as activity
        # for the idle timeout; a test of assets sends its own Accept.
        base = dict(kwargs.get("environ_base") or {})
        base.setdefault("HTTP_ACCEPT", "text/html")
        kwargs["environ_base"] = base
        return super().open(*args, **kwargs)


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A served folder with public, staff and private reports, and a secret
    file beside it that must never be reachable."""
    root = tmp_path / "site"
    files = {
        "index.html": "<h1>Home</h1>",
        "report.html": "<p>alice@example.org, +44 20 7946 0000</p>",
        "public/index.html": "<p>public page</p>",
        "public/style.css": "body{}",
        "staff/grades.html": "<p>staff grades</p>",
        "admins/keys.html": "<p>admins only</p>",
        "data/big.csv": "id,email\n" + "1,a@example.org\n" * 1000,
        "folder/index.html": "<p>folder index</p>",
        "nolist/a.txt": "a",
        ".hidden/secret.txt": "dot folder",
        ".htaccess": "dot file",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    (tmp_path / "outside.txt").write_text("outside the root", encoding="utf-8")
    return root


def write_users(path: Path, passwords: dict[str, str] | None = None) -> None:
    passwords = PASSWORDS if passwords is None else passwords
    accounts = {
        name: Account(name, FAST_HASHER.hash(password), frozenset(GROUPS.get(name, ())))
        for name, password in passwords.items()
    }
    path.write_text(format_users(accounts), encoding="utf-8")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_toml(tables: dict[str, Any]) -> str:
    lines: list[str] = []
    for table, values in tables.items():
        if table == "rules":
            for rule in values:
                lines.append("[[rules]]")
                lines += [f"{key} = {toml_value(value)}" for key, value in rule.items()]
            continue

        lines.append(f"[{table}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


ConfigFactory = Callable[..., Config]


@pytest.fixture
def write_config(tmp_path: Path, site: Path) -> Callable[..., Path]:
    """Write gate.toml, gate.secret and users.txt; return the config path.

    Keyword arguments are tables whose keys override the defaults; pass a
    table as ``None`` to leave it out, and ``rules=[...]`` for rules.
    """

    def write(**tables: Any) -> Path:
        key_file = tmp_path / "gate.secret"
        key_file.write_text(KEY + "\n", encoding="utf-8")
        key_file.chmod(0o600)
        users = tmp_path / "users.txt"
        if not users.exists():
            write_users(users)

        merged: dict[str, Any] = {
            "static": {"root": str(site)},
            "auth": {"users_file": "users.txt"},
            "session": {"secret_file": "gate.secret"},
        }
        for name, values in tables.items():
            if values is None:
                merged.pop(name, None)
            elif name == "rules":
                merged["rules"] = values
            else:
                merged[name] = {**merged.get(name, {}), **values}

        path = tmp_path / "gate.toml"
        path.write_text(render_toml(merged), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_config(write_config: Callable[..., Path]) -> ConfigFactory:
    """Return a loaded Config built from tables, as for ``write_config``."""

    def make(**tables: Any) -> Config:
        return load_config(write_config(**tables), environ={})

    return make


@pytest.fixture
def make_gate(make_config: ConfigFactory, clock: FakeClock) -> Callable[..., Gate]:
    def make(app: Any = None, **tables: Any) -> Gate:
        if app is not None:
            tables.setdefault("static", None)
        return Gate(make_config(**tables), app, hasher=FAST_HASHER, clock=clock)

    return make


@pytest.fixture
def gate(make_gate: Callable[..., Gate]) -> Gate:
    """A gate over ``site`` with the default rules."""
    return make_gate(
        rules=[
            {"path": "/public/", "allow": "anyone"},
            {"path": "/staff/", "groups": ["staff"]},
            {"path": "/admins/", "users": ["carol"]},
        ]
    )


@pytest.fixture
def client(gate: Gate) -> Client:
    return BufferedClient(gate)


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(response: TestResponse) -> str:
    """Return the CSRF token of the form in *response*."""
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, "the page has no form token"
    return match.group(1)


def login(
    client: Client,
    user: str = "alice",
    password: str | None = None,
    next_path: str = "/",
    prefix: str = "/_gate/",
) -> TestResponse:
    """Sign in through the real form and return the POST's response."""
    page = client.get(f"{prefix}login")
    if password is None:
        password = PASSWORDS.get(user, SHARED_PASSWORD)
    data = {"csrf_token": form_token(page), "next": next_path, "password": password}
    if user:
        data["user"] = user
    return client.post(f"{prefix}login", data=data)


def logout(client: Client, prefix: str = "/_gate/") -> TestResponse:
    page = client.get(f"{prefix}logout")
    return client.post(f"{prefix}logout", data={"csrf_token": form_token(page)})


class EnvironClient(BufferedClient):
    """A client that puts *environ* into the environ of every request."""

    def __init__(self, app: Any, **environ: Any) -> None:
        super().__init__(app)
        self.environ = environ

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs["environ_overrides"] = {
            **self.environ,
            **kwargs.get("environ_overrides", {}),
        }
        return super().open(*args, **kwargs)


def signed_in(gate: Gate, user: str | None = "alice", **environ: Any) -> EnvironClient:
    """Return a client signed in as *user*, or anonymous for ``None``."""
    client = EnvironClient(gate, **environ)
    if user is not None:
        assert login(client, user).status_code == 303
    return client


def set_cookies(response: TestResponse) -> dict[str, tuple[str, dict[str, str]]]:
    """Return the cookies a response sets: name -> (value, attributes)."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        pair, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = pair.partition("=")
        options = {}
        for attribute in attributes:
            key, _, option = attribute.partition("=")
            options[key.lower()] = option
        found[name] = (value, options)
    return found


def can_lock(lock_path: Path) -> bool:
    """Try the lock as another process would, without waiting."""
    descriptor = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)

    return True
