"""The gate with its shared store: revocation, the account page, throttling,
check slots and store outages."""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from werkzeug.test import TestResponse

from conftest import (
    FAST_HASHER,
    PASSWORDS,
    BufferedClient,
    EnvironClient,
    FakeClock,
    form_token,
    login,
    logout,
    set_cookies,
    signed_in,
)
from static_gate import Gate
from static_gate.cli import main
from static_gate.config import Config
from static_gate.errors import ConfigError
from static_gate.keys import SECRET_ENV
from static_gate.stores import session_handle
from static_gate.stores.memory import MemoryStore

AUDIT = "static_gate.audit"
COOKIE = "static_gate"
RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/admins/", "users": ["carol"]},
]
THROTTLE = {"max_failures": 5, "window": "15m"}
WINDOW = 15 * 60
PEER = "192.0.2.10"

MakeGate = Callable[..., Gate]


# -- helpers ------------------------------------------------------------------


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == AUDIT]


def session_cookie(client: BufferedClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def session_id(gate: Gate, client: BufferedClient) -> str:
    check = gate.sessions.load(session_cookie(client), gate.clock())
    assert check.session is not None
    return check.session.id


def browser(gate: Gate, **environ: Any) -> EnvironClient:
    """A fresh browser at PEER, with *environ* on every request."""
    return EnvironClient(gate, **{"REMOTE_ADDR": PEER, **environ})


def attempt(gate: Gate, user: str, password: str, **environ: Any) -> TestResponse:
    return login(browser(gate, **environ), user, password)


def wrong(gate: Gate, user: str = "alice", **environ: Any) -> TestResponse:
    return attempt(gate, user, "not-the-password", **environ)


def right(gate: Gate, user: str = "alice", **environ: Any) -> TestResponse:
    return attempt(gate, user, PASSWORDS[user], **environ)


def sets_session(response: TestResponse) -> bool:
    value = set_cookies(response).get(COOKIE, ("", {}))[0]
    return bool(value)


def clears_session(response: TestResponse) -> bool:
    cookie = set_cookies(response).get(COOKIE)
    return cookie is not None and cookie[0] == "" and cookie[1]["max-age"] == "0"


class CountingHasher(PasswordHasher):
    """The fast argon2 parameters, counting every verification."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.calls += 1
        return super().verify(hash, password)


class BlockingHasher(CountingHasher):
    """Blocks its first verification until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10), "the test never released the check"
        return super().verify(hash, password)


@pytest.fixture
def gate(make_gate: MakeGate) -> Gate:
    return make_gate(rules=RULES)


@pytest.fixture
def throttled(make_gate: MakeGate) -> Gate:
    return make_gate(rules=RULES, throttle=THROTTLE)


@pytest.fixture
def hasher(throttled: Gate, monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(throttled.accounts, "hasher", counting)
    return counting


# -- sign-out across processes ------------------------------------------------


def test_logout_in_one_process_ends_the_session_in_another(
    make_gate: MakeGate, caplog: pytest.LogCaptureFixture
) -> None:
    """Two gates on one SQLite file act as two worker processes."""
    first = make_gate(rules=RULES)
    second = make_gate(rules=RULES)
    assert second.store is not first.store
    client = signed_in(first, REMOTE_ADDR=PEER)
    thief = browser(second)
    thief.set_cookie(COOKIE, session_cookie(client) or "")
    assert thief.get("/report.html").status_code == 200

    logout(client)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = thief.get("/report.html")

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/_gate/login?next=")
    assert clears_session(response)
    assert (
        logging.INFO,
        f"session-revoked user='alice' client={PEER} path='/report.html'",
    ) in audit_lines(caplog)


def test_injected_store_is_the_one_used(
    make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path
) -> None:
    store = MemoryStore()
    gate = Gate(make_config(rules=RULES), hasher=FAST_HASHER, clock=clock, store=store)

    client = signed_in(gate, REMOTE_ADDR=PEER)

    [record] = store.list_sessions(clock())
    assert record.handle == session_handle(session_id(gate, client))
    assert (record.user, record.client) == ("alice", PEER)
    assert not (tmp_path / "state").exists()


# -- the account page ---------------------------------------------------------


def everywhere_token(response: TestResponse) -> str:
    match = re.search(
        r'action="/_gate/account">\s*<input type="hidden" name="csrf_token" '
        r'value="([^"]+)"',
        response.get_data(as_text=True),
    )
    assert match, "the page has no sign-out-everywhere form"
    return html.unescape(match.group(1))


def session_rows(response: TestResponse) -> list[str]:
    text = response.get_data(as_text=True)
    return re.findall(r"<li>(.*?)</li>", text.split("<h2>Open sessions</h2>")[1])


@pytest.fixture
def browsers(gate: Gate) -> dict[str, EnvironClient]:
    """Two browsers of alice and one of bob, each from its own address."""
    return {
        "alice": signed_in(gate, "alice", REMOTE_ADDR="192.0.2.1"),
        "alice-phone": signed_in(gate, "alice", REMOTE_ADDR="192.0.2.2"),
        "bob": signed_in(gate, "bob", REMOTE_ADDR="203.0.113.9"),
    }


def status_of(browsers: dict[str, EnvironClient]) -> dict[str, int]:
    return {name: c.get("/report.html").status_code for name, c in browsers.items()}


def test_account_page_needs_a_session(gate: Gate) -> None:
    response = browser(gate).get("/_gate/account")

    assert response.status_code == 303
    assert response.headers["Location"] == "/_gate/login?next=/_gate/account"


def test_account_page_lists_this_users_sessions_only(
    gate: Gate, browsers: dict[str, EnvironClient]
) -> None:
    response = browsers["alice"].get("/_gate/account")

    rows = session_rows(response)
    assert response.status_code == 200
    assert len(rows) == 2
    [here] = [row for row in rows if "This browser" in row]
    assert "from 192.0.2.1" in here
    assert any("from 192.0.2.2" in row for row in rows)
    text = response.get_data(as_text=True)
    assert "203.0.113.9" not in text
    for client in browsers.values():
        secret_id = session_id(gate, client)
        assert (session_cookie(client) or "?") not in text
        assert secret_id not in text
        assert session_handle(secret_id) not in text


def test_sign_out_everywhere_ends_every_session_of_the_user(
    gate: Gate,
    browsers: dict[str, EnvironClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = browsers["alice"]
    token = everywhere_token(alice.get("/_gate/account"))

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = alice.post("/_gate/account", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["Location"] == "/_gate/login?signed_out"
    assert clears_session(response)
    assert status_of(browsers) == {"alice": 303, "alice-phone": 303, "bob": 200}
    assert [r.user for r in gate.store.list_sessions(gate.clock())] == ["bob"]
    assert (
        logging.INFO,
        "logout-everywhere user='alice' client=192.0.2.1 sessions=2",
    ) in audit_lines(caplog)


@pytest.mark.parametrize("token", [None, "", "forged", "other-browser"])
def test_sign_out_everywhere_needs_this_sessions_token(
    gate: Gate, browsers: dict[str, EnvironClient], token: str | None
) -> None:
    alice = browsers["alice"]
    everywhere_token(alice.get("/_gate/account"))
    if token == "other-browser":
        token = everywhere_token(browsers["alice-phone"].get("/_gate/account"))
    data = {} if token is None else {"csrf_token": token}

    response = alice.post("/_gate/account", data=data)

    assert response.status_code == 400
    assert not clears_session(response)
    assert status_of(browsers) == {"alice": 200, "alice-phone": 200, "bob": 200}


# -- throttling through the login form ----------------------------------------


def test_sixth_attempt_is_refused_without_checking_the_password(
    throttled: Gate, hasher: CountingHasher
) -> None:
    for _ in range(5):
        assert wrong(throttled).status_code == 401
    assert hasher.calls == 5

    response = right(throttled)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(WINDOW)
    assert "Too many attempts" in response.get_data(as_text=True)
    assert not sets_session(response)
    assert hasher.calls == 5


def test_each_refused_attempt_waits_longer(throttled: Gate) -> None:
    for _ in range(5):
        wrong(throttled)

    waits = [int(wrong(throttled).headers["Retry-After"]) for _ in range(4)]

    assert waits == [WINDOW, WINDOW, 2 * WINDOW, 4 * WINDOW]


def test_right_password_works_again_after_the_window(
    throttled: Gate, clock: FakeClock
) -> None:
    for _ in range(5):
        wrong(throttled)
    assert right(throttled).status_code == 429

    clock.advance(WINDOW)

    assert right(throttled).status_code == 303


def test_success_clears_the_user_name_count(throttled: Gate) -> None:
    for _ in range(4):
        assert wrong(throttled, REMOTE_ADDR="192.0.2.1").status_code == 401
    assert right(throttled, REMOTE_ADDR="192.0.2.1").status_code == 303

    statuses = [wrong(throttled, REMOTE_ADDR="192.0.2.2").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 401]


def test_success_does_not_clear_the_address_count(throttled: Gate) -> None:
    for _ in range(4):
        assert wrong(throttled, "alice").status_code == 401
    assert right(throttled, "alice").status_code == 303
    assert wrong(throttled, "bob").status_code == 401

    assert right(throttled, "carol").status_code == 429
    assert right(throttled, "carol", REMOTE_ADDR="192.0.2.7").status_code == 303


@pytest.mark.parametrize("user", ["alice", "mallory"])
def test_known_and_unknown_names_are_throttled_alike(
    throttled: Gate, hasher: CountingHasher, user: str
) -> None:
    """Each attempt comes from a new address: only the name's budget counts."""
    statuses = [
        wrong(throttled, user, REMOTE_ADDR=f"192.0.2.{n}").status_code
        for n in range(1, 7)
    ]

    assert statuses == [401, 401, 401, 401, 401, 429]
    assert hasher.calls == 5


def test_user_name_case_shares_one_budget(throttled: Gate) -> None:
    for n, name in enumerate(["Alice", "ALICE", "alice", "aLice", "alicE"], 1):
        assert wrong(throttled, name, REMOTE_ADDR=f"192.0.2.{n}").status_code == 401

    assert right(throttled, "alice", REMOTE_ADDR="192.0.2.9").status_code == 429


def test_forged_forwarded_for_does_not_change_the_address(
    throttled: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    """Without [proxy] trusted, X-Forwarded-For is the client's own word."""
    with caplog.at_level(logging.INFO, logger=AUDIT):
        statuses = [
            wrong(
                throttled,
                f"user{n}",
                REMOTE_ADDR="192.0.2.50",
                HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
            ).status_code
            for n in range(6)
        ]

    assert statuses == [401, 401, 401, 401, 401, 429]
    assert "198.51.100." not in caplog.text
    assert "client=192.0.2.50" in caplog.text


def test_forwarded_address_from_a_trusted_proxy_is_the_key(
    make_gate: MakeGate,
) -> None:
    gate = make_gate(rules=RULES, throttle=THROTTLE, proxy={"trusted": ["10.0.0.1"]})
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    spread = [
        wrong(gate, f"user{n}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}", **proxy)
        for n in range(6)
    ]
    one = [
        wrong(gate, f"other{n}", HTTP_X_FORWARDED_FOR="198.51.100.99", **proxy)
        for n in range(6)
    ]

    assert [r.status_code for r in spread] == [401] * 6
    assert [r.status_code for r in one] == [401, 401, 401, 401, 401, 429]


def test_throttled_attempt_is_audited_at_warning(
    throttled: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        wrong(throttled)
    caplog.clear()

    with caplog.at_level(logging.INFO, logger=AUDIT):
        right(throttled)

    assert audit_lines(caplog) == [
        (logging.WARNING, f"login-throttled user='alice' client={PEER} retry_after=900")
    ]


# -- check slots --------------------------------------------------------------


def test_busy_check_slots_refuse_sign_in_but_not_readers(
    make_gate: MakeGate,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = make_gate(rules=RULES, throttle={"concurrent_checks": 1, "check_wait": "1s"})
    reader = signed_in(gate, "bob", REMOTE_ADDR=PEER)
    blocking = BlockingHasher()
    monkeypatch.setattr(gate.accounts, "hasher", blocking)
    results: list[int] = []
    stuck = threading.Thread(
        target=lambda: results.append(login(browser(gate)).status_code)
    )
    stuck.start()
    try:
        assert blocking.entered.wait(10)
        with caplog.at_level(logging.INFO, logger=AUDIT):
            busy = login(browser(gate), "carol")
        read = reader.get("/report.html")
    finally:
        blocking.release.set()
        stuck.join(timeout=10)

    assert not stuck.is_alive()
    assert results == [303]
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "5"
    assert not sets_session(busy)
    assert (
        logging.WARNING,
        f"login-busy user='carol' client={PEER} reason=too many checks at once",
    ) in audit_lines(caplog)
    assert read.status_code == 200
    assert blocking.calls == 1


# -- store outages ------------------------------------------------------------


class Outage:
    """Replace the gate's SQLite file by a directory, and put it back."""

    def __init__(self, gate: Gate, aside: Path) -> None:
        self.gate = gate
        self.path: Path = gate.store.path  # type: ignore[attr-defined]
        self.aside = aside

    def start(self) -> None:
        # An open connection would go on with the replaced file (see
        # test_replaced_database_is_noticed_by_an_open_connection): close it,
        # as a worker thread that connects during the outage.
        self.gate.store.close()
        self.aside.mkdir()
        for part in self.path.parent.glob(self.path.name + "*"):
            part.rename(self.aside / part.name)
        self.path.mkdir()

    def end(self) -> None:
        self.path.rmdir()
        for part in self.aside.iterdir():
            part.rename(self.path.parent / part.name)


@pytest.fixture
def outage(gate: Gate, tmp_path: Path) -> Iterator[Outage]:
    broken = Outage(gate, tmp_path / "aside")
    yield broken
    if broken.path.is_dir():
        broken.end()


def test_sign_in_during_an_outage_gets_503(
    gate: Gate,
    outage: Outage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No password is checked that could not be counted."""
    counting = CountingHasher()
    monkeypatch.setattr(gate.accounts, "hasher", counting)
    client = browser(gate)
    outage.start()

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = login(client)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "Temporarily unavailable" in response.get_data(as_text=True)
    assert not sets_session(response)
    assert session_cookie(client) is None
    assert counting.calls == 0
    assert (
        logging.WARNING,
        f"login-unavailable user='alice' client={PEER} reason=state store out of reach",
    ) in audit_lines(caplog)


@pytest.mark.parametrize("path", ["/report.html", "/staff/grades.html", "/"])
def test_signed_in_pages_fail_closed_during_an_outage(
    gate: Gate, outage: Outage, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    client = signed_in(gate, REMOTE_ADDR=PEER)
    outage.start()

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = client.get(path)

    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert "Temporarily unavailable" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers, "the session must outlive it"
    assert (
        logging.WARNING,
        f"store-unavailable client={PEER} path={path!r} reason=session not checked",
    ) in audit_lines(caplog)


@pytest.mark.parametrize("user", ["alice", None])
def test_public_pages_work_during_an_outage(
    gate: Gate, outage: Outage, user: str | None
) -> None:
    client = signed_in(gate, user, REMOTE_ADDR=PEER)
    outage.start()

    response = client.get("/public/index.html")

    assert response.status_code == 200
    assert response.get_data(as_text=True) == "<p>public page</p>"


def test_read_during_outage_keeps_signed_in_readers_reading(
    make_gate: MakeGate, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = make_gate(rules=RULES, state={"read_during_outage": True})
    client = signed_in(gate, REMOTE_ADDR=PEER)
    outage = Outage(gate, tmp_path / "aside")
    outage.start()

    with caplog.at_level(logging.INFO):
        pages = [
            client.get(p).status_code for p in ("/report.html", "/staff/grades.html")
        ]
        sign_in = login(browser(gate), "bob")

    assert pages == [200, 200]
    assert client.get("/admins/keys.html").status_code == 403
    assert sign_in.status_code == 503
    assert any(
        r.name == "static_gate"
        and r.levelno == logging.ERROR
        and r.getMessage().startswith("state store out of reach: ")
        for r in caplog.records
    )


def test_sign_out_during_an_outage_with_reading_on_clears_the_cookie(
    make_gate: MakeGate, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = make_gate(rules=RULES, state={"read_during_outage": True})
    client = signed_in(gate, REMOTE_ADDR=PEER)
    token = form_token(client.get("/_gate/logout"))
    Outage(gate, tmp_path / "aside").start()

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = client.post("/_gate/logout", data={"csrf_token": token})

    assert response.status_code == 503
    assert clears_session(response)
    assert (
        logging.WARNING,
        f"logout-unrecorded user='alice' client={PEER} reason=state store out of reach",
    ) in audit_lines(caplog)


def test_sign_out_during_an_outage_is_not_silently_ignored(
    gate: Gate, outage: Outage
) -> None:
    """A sign-out that cannot be recorded must still end this browser's
    session, or the next person at a shared computer is signed in."""
    client = signed_in(gate, REMOTE_ADDR=PEER)
    token = form_token(client.get("/_gate/logout"))
    outage.start()

    response = client.post("/_gate/logout", data={"csrf_token": token})
    outage.end()

    assert clears_session(response)
    assert client.get("/report.html").status_code == 303


def test_gate_recovers_without_a_restart(gate: Gate, outage: Outage) -> None:
    client = signed_in(gate, REMOTE_ADDR=PEER)
    outage.start()
    assert client.get("/report.html").status_code == 503
    assert login(browser(gate), "bob").status_code == 503

    outage.end()

    assert client.get("/report.html").status_code == 200
    bob = signed_in(gate, "bob", REMOTE_ADDR=PEER)
    assert bob.get("/report.html").status_code == 200


def test_replaced_database_is_noticed_by_an_open_connection(
    gate: Gate, tmp_path: Path
) -> None:
    """The worker's open connection must not carry on with a deleted file:
    sign-outs made by others (the CLI, other workers) would never reach it."""
    client = signed_in(gate, REMOTE_ADDR=PEER)
    path: Path = gate.store.path  # type: ignore[attr-defined]
    for part in path.parent.glob(path.name + "*"):
        part.unlink()
    path.mkdir()

    assert login(browser(gate), "bob").status_code == 503
    assert client.get("/report.html").status_code == 503


# -- start-up -----------------------------------------------------------------


UNUSABLE = [
    pytest.param("sqlite:/proc/nope/x.db", id="not-creatable"),
    pytest.param("sqlite:gate.toml/x.db", id="under-a-file"),
    pytest.param("redis://127.0.0.1:1/0", id="redis-not-running"),
]


@pytest.mark.parametrize("store", UNUSABLE)
def test_unusable_store_stops_the_gate(
    make_config: Callable[..., Config], clock: FakeClock, store: str
) -> None:
    config = make_config(rules=RULES, state={"store": store})

    with pytest.raises(ConfigError) as caught:
        Gate(config, hasher=FAST_HASHER, clock=clock)

    [line] = str(caught.value).splitlines()
    assert line.startswith("gate.toml: [state] store cannot be used (")


@pytest.mark.parametrize("store", UNUSABLE)
def test_check_command_reports_an_unusable_store(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: str,
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = write_config(rules=RULES, state={"store": store})

    code = main(["check", "--config", str(path)])

    out, err = capsys.readouterr()
    assert code == 2
    [line] = err.splitlines()
    assert "[state] store" in line


def test_memory_store_warns_that_it_is_not_shared(
    make_gate: MakeGate, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="static_gate"):
        make_gate(rules=RULES, state={"store": "memory"})

    [warning] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "static_gate" and r.levelno == logging.WARNING
    ]
    assert "not shared with other processes" in warning


def test_sqlite_store_starts_without_a_warning(
    make_gate: MakeGate, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.INFO, logger="static_gate"):
        make_gate(rules=RULES)

    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (
        logging.INFO,
        f"state store: SQLite file {tmp_path / 'state' / 'static-gate.sqlite3'}",
    ) in messages
    assert all(level < logging.WARNING for level, _ in messages)
