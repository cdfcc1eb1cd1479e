"""How long a session lasts, and how its cookie is named and scoped."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder, TestResponse

from conftest import (
    FAST_HASHER,
    KEY,
    PASSWORDS,
    BufferedClient,
    EnvironClient,
    FakeClock,
    login,
    logout,
    set_cookies,
    signed_in,
)
from static_gate import Gate, credentials
from static_gate.credentials import Account, format_users, read_users_file
from static_gate.keys import SecretKey
from static_gate.session import SessionCodec

AUDIT = "static_gate.audit"
COOKIE = "static_gate"
RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
]


def session_cookie(client: BufferedClient, name: str = COOKIE) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    return cookie.value


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == AUDIT]


def assert_sent_to_login(response: TestResponse) -> None:
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/_gate/login?next=")
    value, options = set_cookies(response)[COOKIE]
    assert value == ""
    assert options["max-age"] == "0"


# -- lifetime -----------------------------------------------------------------


def test_idle_timeout_ends_the_session(
    gate: Gate, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(gate, REMOTE_ADDR="192.0.2.10")
    caplog.set_level(logging.INFO, logger=AUDIT)

    clock.advance(gate.config.session.idle_timeout)

    assert_sent_to_login(client.get("/report.html"))
    assert (
        logging.INFO,
        "session-expired client=192.0.2.10 path='/report.html' reason=idle timeout",
    ) in audit_lines(caplog)


def test_activity_before_the_idle_timeout_keeps_the_session(
    gate: Gate, clock: FakeClock
) -> None:
    client = signed_in(gate)
    idle = gate.config.session.idle_timeout

    for _ in range(4):
        clock.advance(idle - 60)
        assert client.get("/report.html").status_code == 200


def test_lifetime_ends_the_session_despite_activity(
    make_gate: Callable[..., Gate], clock: FakeClock
) -> None:
    gate = make_gate(session={"lifetime": "1h", "idle_timeout": "30m"}, rules=RULES)
    client = signed_in(gate)

    for _ in range(2):
        clock.advance(20 * 60)
        assert client.get("/report.html").status_code == 200

    clock.advance(20 * 60)
    assert_sent_to_login(client.get("/report.html"))


def test_cookie_is_reissued_only_after_the_refresh_interval(
    gate: Gate, clock: FakeClock
) -> None:
    client = signed_in(gate)
    first = session_cookie(client)
    refresh = gate.sessions.refresh_after

    clock.advance(refresh - 1)
    assert COOKIE not in set_cookies(client.get("/report.html"))
    assert COOKIE not in set_cookies(client.get("/public/index.html"))

    clock.advance(1)
    renewed = set_cookies(client.get("/report.html"))[COOKIE][0]
    assert COOKIE not in set_cookies(client.get("/report.html"))

    old = gate.sessions.load(first, clock.now).session
    new = gate.sessions.load(renewed, clock.now).session
    assert old is not None and new is not None
    assert new.id == old.id
    assert new.issued_at == old.issued_at
    assert new.last_seen == int(clock.now)


def other_key_cookie(gate: Gate, clock: FakeClock, cookie: str) -> str:
    codec = SessionCodec([SecretKey(b"o" * 48)], 3600, 1800)
    return codec.dump(codec.start("alice", "fingerprint", clock.now))


def flipped_payload(gate: Gate, clock: FakeClock, cookie: str) -> str:
    payload, signature = cookie.rsplit(".", 1)
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{flipped}.{signature}"


def cut_signature(gate: Gate, clock: FakeClock, cookie: str) -> str:
    return cookie[:-5]


def not_a_cookie(gate: Gate, clock: FakeClock, cookie: str) -> str:
    return "not-a-session-cookie"


def issued_in_the_future(gate: Gate, clock: FakeClock, cookie: str) -> str:
    session = gate.sessions.load(cookie, clock.now).session
    assert session is not None
    later = session.issued_at + 3600
    return gate.sessions.dump(
        type(session)(session.id, session.user, later, later, session.fingerprint)
    )


@pytest.mark.parametrize(
    "tamper",
    [
        flipped_payload,
        cut_signature,
        other_key_cookie,
        not_a_cookie,
        issued_in_the_future,
    ],
)
def test_tampered_cookie_is_deleted_and_logged(
    gate: Gate,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    tamper: Callable[[Gate, FakeClock, str], str],
) -> None:
    cookie = session_cookie(signed_in(gate))
    client = EnvironClient(gate, REMOTE_ADDR="192.0.2.10")
    client.set_cookie(COOKIE, tamper(gate, clock, cookie))
    caplog.set_level(logging.INFO, logger=AUDIT)

    assert_sent_to_login(client.get("/report.html"))
    assert (
        logging.WARNING,
        "session-rejected client=192.0.2.10 path='/report.html' "
        "reason=bad signature or format",
    ) in audit_lines(caplog)


def test_tampered_cookie_on_a_public_path_is_deleted(gate: Gate) -> None:
    client = BufferedClient(gate)
    client.set_cookie(COOKIE, "not-a-session-cookie")

    response = client.get("/public/index.html")

    assert response.status_code == 200
    assert set_cookies(response)[COOKIE][0] == ""


# -- changes to the users file --------------------------------------------------


@pytest.fixture
def reload_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look at the users file on every request instead of once a second."""
    monkeypatch.setattr(credentials, "RELOAD_INTERVAL", 0.0)


def change_users(path: Path, change: Callable[[dict[str, Account]], None]) -> None:
    """Rewrite the users file as the command line does: a new file put in place."""
    accounts = read_users_file(path)
    change(accounts)
    fresh = path.with_suffix(".new")
    fresh.write_text(format_users(accounts), encoding="utf-8")
    os.replace(fresh, path)


def new_password(accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    accounts["alice"] = Account(
        "alice", FAST_HASHER.hash("a-new-password-9"), alice.groups
    )


def removal(accounts: dict[str, Account]) -> None:
    del accounts["alice"]


@pytest.mark.usefixtures("reload_at_once")
@pytest.mark.parametrize(
    ("change", "reason"),
    [(new_password, "password changed"), (removal, "user removed")],
    ids=["password-changed", "user-removed"],
)
def test_users_file_change_ends_the_users_session(
    gate: Gate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[dict[str, Account]], None],
    reason: str,
) -> None:
    alice = signed_in(gate, "alice", REMOTE_ADDR="192.0.2.10")
    carol = signed_in(gate, "carol")
    caplog.set_level(logging.INFO, logger=AUDIT)

    change_users(tmp_path / "users.txt", change)

    assert_sent_to_login(alice.get("/report.html"))
    assert (
        logging.INFO,
        f"session-ended user='alice' client=192.0.2.10 reason={reason}",
    ) in audit_lines(caplog)
    assert carol.get("/staff/grades.html").status_code == 200


@pytest.mark.usefixtures("reload_at_once")
def test_changed_password_signs_in_with_the_new_one_only(
    gate: Gate, tmp_path: Path
) -> None:
    change_users(tmp_path / "users.txt", new_password)

    assert login(BufferedClient(gate), "alice").status_code == 401
    assert login(BufferedClient(gate), "alice", "a-new-password-9").status_code == 303


def test_users_file_is_reread_when_the_gate_clock_passes_the_interval(
    gate: Gate,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gate's clock, not the wall clock, decides when the file is re-read."""
    # Ten minutes: longer than this test runs, shorter than the idle timeout.
    monkeypatch.setattr(credentials, "RELOAD_INTERVAL", 600.0)
    client = signed_in(gate, "alice", REMOTE_ADDR="192.0.2.10")
    change_users(tmp_path / "users.txt", new_password)
    caplog.set_level(logging.INFO, logger=AUDIT)

    clock.advance(601)

    assert_sent_to_login(client.get("/report.html"))
    assert (
        logging.INFO,
        "session-ended user='alice' client=192.0.2.10 reason=password changed",
    ) in audit_lines(caplog)


# -- name, scope and Secure -----------------------------------------------------


def test_plain_http_cookie_is_not_secure(gate: Gate) -> None:
    response = login(BufferedClient(gate))

    value, options = set_cookies(response)[COOKIE]
    assert value
    assert "secure" not in options


def test_https_cookie_uses_the_host_prefix(gate: Gate) -> None:
    client = EnvironClient(gate, **{"wsgi.url_scheme": "https"})

    response = login(client)

    value, options = set_cookies(response)["__Host-static_gate"]
    assert value
    assert "secure" in options
    assert options["path"] == "/"
    assert "domain" not in options
    assert COOKIE not in set_cookies(response)
    assert client.get("/report.html").status_code == 200


@pytest.mark.parametrize(
    ("scheme", "name", "secure"),
    [("http", COOKIE, False), ("https", "__Secure-static_gate", True)],
)
def test_mounted_gate_scopes_the_cookie_to_its_mount_point(
    gate: Gate, scheme: str, name: str, secure: bool
) -> None:
    client = EnvironClient(gate, SCRIPT_NAME="/reports", **{"wsgi.url_scheme": scheme})

    response = login(client)

    assert response.headers["Location"] == "/reports/"
    value, options = set_cookies(response)[name]
    assert value
    assert options["path"] == "/reports/"
    assert ("secure" in options) is secure
    assert client.get("/report.html").status_code == 200


def test_mounted_gate_redirects_to_its_own_login_page(gate: Gate) -> None:
    client = EnvironClient(gate, SCRIPT_NAME="/reports")

    response = client.get("/staff/grades.html")

    assert response.headers["Location"] == (
        "/reports/_gate/login?next=%2Fstaff%2Fgrades.html"
    )


@pytest.mark.parametrize("script_name", ["", "/reports"], ids=["root", "mounted"])
def test_https_cookies_obey_their_name_prefix(gate: Gate, script_name: str) -> None:
    """Browsers drop a __Host- cookie unless it has Secure and Path=/ and no
    Domain, and a __Secure- cookie unless it has Secure (RFC 6265bis 4.1.3)."""
    client = EnvironClient(
        gate, SCRIPT_NAME=script_name, **{"wsgi.url_scheme": "https"}
    )
    responses = [client.get("/_gate/login"), login(client), logout(client)]

    cookies = [c for r in responses for c in set_cookies(r).items()]
    assert cookies
    for name, (_, options) in cookies:
        if name.startswith("__Host-"):
            assert "secure" in options, name
            assert options.get("path") == "/", name
            assert "domain" not in options, name
        else:
            assert name.startswith("__Secure-"), name
            assert "secure" in options, name


@pytest.mark.parametrize(
    ("peer", "proto", "name", "secure"),
    [
        ("10.0.0.1", "https", "__Host-static_gate", True),
        ("10.0.0.1", "http", COOKIE, False),
        ("192.0.2.9", "https", COOKIE, False),
    ],
    ids=["trusted-https", "trusted-http", "untrusted-https"],
)
def test_forwarded_proto_is_believed_only_from_trusted_proxies(
    make_gate: Callable[..., Gate], peer: str, proto: str, name: str, secure: bool
) -> None:
    gate = make_gate(proxy={"trusted": ["10.0.0.0/24"]}, rules=RULES)
    client = EnvironClient(gate, REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO=proto)

    response = login(client)

    value, options = set_cookies(response)[name]
    assert value
    assert ("secure" in options) is secure


@pytest.mark.parametrize(
    ("peer", "forwarded", "logged"),
    [
        ("192.0.2.9", "203.0.113.7", "192.0.2.9"),
        ("10.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("10.0.0.1", "203.0.113.7, 10.0.0.2", "203.0.113.7"),
        ("10.0.0.1", "not-an-address", "10.0.0.1"),
    ],
    ids=["untrusted", "trusted", "spoofed-left", "two-proxies", "garbage"],
)
def test_forwarded_for_sets_the_logged_client_only_from_trusted_proxies(
    make_gate: Callable[..., Gate],
    caplog: pytest.LogCaptureFixture,
    peer: str,
    forwarded: str,
    logged: str,
) -> None:
    gate = make_gate(proxy={"trusted": ["10.0.0.0/24"]}, rules=RULES)
    client = EnvironClient(gate, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    caplog.set_level(logging.INFO, logger=AUDIT)

    login(client, "mallory", "whatever-password")

    assert (
        logging.WARNING,
        f"login-failed user='mallory' client={logged} "
        "reason=wrong user name or password",
    ) in audit_lines(caplog)


@pytest.mark.parametrize(
    ("setting", "scheme", "name", "secure"),
    [
        (True, "http", "__Host-static_gate", True),
        (False, "https", COOKIE, False),
    ],
    ids=["forced-on", "forced-off"],
)
def test_secure_cookie_setting_overrides_the_scheme(
    make_gate: Callable[..., Gate],
    setting: bool,
    scheme: str,
    name: str,
    secure: bool,
) -> None:
    gate = make_gate(session={"secure_cookie": setting}, rules=RULES)
    client = EnvironClient(gate, **{"wsgi.url_scheme": scheme})

    response = login(client)

    value, options = set_cookies(response)[name]
    assert value
    assert ("secure" in options) is secure


def test_cookie_name_setting_is_used(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(session={"cookie_name": "reports_login"}, rules=RULES)
    client = BufferedClient(gate)

    response = login(client)

    assert set_cookies(response)["reports_login"][0]
    assert client.get("/report.html").status_code == 200


def test_session_cookie_holds_no_password_material(gate: Gate, tmp_path: Path) -> None:
    """The cookie is signed, not encrypted: anyone holding it can read it."""
    cookie = session_cookie(signed_in(gate))
    users = (tmp_path / "users.txt").read_text()
    alice_hash = next(
        line.split(":")[1] for line in users.splitlines() if line.startswith("alice:")
    )

    text = cookie.rsplit(".", 1)[0]
    assert text.split("|")[2] == "alice"
    assert PASSWORDS["alice"] not in text
    assert alice_hash not in text
    assert alice_hash.rsplit("$", 1)[1] not in text
    assert KEY not in text


@pytest.mark.parametrize(
    "header",
    [
        "theme=dark; static_gate={value}; lang=en",
        'static_gate="{value}"',
        "static_gate={value}; static_gate=forged",
        "  static_gate = {value} ;other=1",
    ],
)
def test_session_cookie_is_found_among_others(gate: Gate, header: str) -> None:
    """The header is sent as written (the test client's jar would rewrite it)."""
    value = session_cookie(signed_in(gate))

    assert status_for_cookie_header(gate, header.format(value=value)) == 200


def test_a_cookie_of_the_site_is_not_taken_for_the_session(gate: Gate) -> None:
    value = session_cookie(signed_in(gate))

    assert status_for_cookie_header(gate, f"not_static_gate_at_all={value}") == 303


def status_for_cookie_header(gate: Gate, header: str) -> int:
    environ = EnvironBuilder(path="/report.html").get_environ()
    environ["HTTP_COOKIE"] = header
    statuses: list[str] = []
    body = gate(environ, lambda status, headers, exc_info=None: statuses.append(status))
    if hasattr(body, "close"):
        body.close()
    return int(statuses[0].split()[0])
