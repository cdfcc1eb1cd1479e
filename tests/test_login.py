"""Signing in and out through the gate's own pages."""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from werkzeug.test import TestResponse

from conftest import (
    FAST_HASHER,
    KEY,
    PASSWORDS,
    SHARED_PASSWORD,
    BufferedClient,
    EnvironClient,
    FakeClock,
    form_token,
    login,
    logout,
    set_cookies,
    signed_in,
)
from static_gate import Gate, load_config

AUDIT = "static_gate.audit"
COOKIE = "static_gate"


# -- helpers ----------------------------------------------------------------


def hidden_fields(response: TestResponse) -> dict[str, str]:
    text = response.get_data(as_text=True)
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', text)
    return {name: html.unescape(value) for name, value in pairs}


def error_paragraph(response: TestResponse) -> str:
    match = re.search(r'<p class="error"[^>]*>.*?</p>', response.get_data(as_text=True))
    assert match, "the page shows no error"
    return match.group(0)


def session_cookie(client: BufferedClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


PEER = "192.0.2.10"


class PageParser(HTMLParser):
    """Collect the tags of a page with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse_page(response: TestResponse) -> PageParser:
    parser = PageParser()
    parser.feed(response.get_data(as_text=True))
    return parser


@pytest.fixture
def shared_gate(write_config: Callable[..., Path], clock: FakeClock) -> Gate:
    """A gate that knows only the shared password, no users file."""
    path = write_config(auth=None)
    shared_hash = FAST_HASHER.hash(SHARED_PASSWORD)
    with path.open("a", encoding="utf-8") as file:
        file.write(f'[auth]\nshared_password_hash = "{shared_hash}"\n')
    return Gate(load_config(path, environ={}), hasher=FAST_HASHER, clock=clock)


@pytest.fixture
def both_gate(make_gate: Callable[..., Gate]) -> Gate:
    """A gate with a users file and a shared password."""
    return make_gate(auth={"shared_password_hash": FAST_HASHER.hash(SHARED_PASSWORD)})


# -- the round trip -----------------------------------------------------------


def test_protected_path_redirects_to_login_with_next(client: BufferedClient) -> None:
    response = client.get("/staff/grades.html?a=1&b=x%20y")

    assert response.status_code == 303
    target = quote("/staff/grades.html?a=1&b=x%20y", safe="")
    assert response.headers["Location"] == f"/_gate/login?next={target}"


def test_login_form_returns_to_the_original_path(client: BufferedClient) -> None:
    page = client.get(client.get("/staff/grades.html?a=1&b=2").headers["Location"])
    fields = hidden_fields(page)
    assert fields["next"] == "/staff/grades.html?a=1&b=2"

    response = client.post(
        "/_gate/login",
        data={**fields, "user": "alice", "password": PASSWORDS["alice"]},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/grades.html?a=1&b=2"
    assert client.get("/staff/grades.html").get_data() == b"<p>staff grades</p>"


def test_session_cookie_is_httponly_lax_and_site_wide(client: BufferedClient) -> None:
    response = login(client)

    value, options = set_cookies(response)[COOKIE]
    assert value
    assert "httponly" in options
    assert options["samesite"] == "Lax"
    assert options["path"] == "/"
    assert "domain" not in options


def test_failed_login_rerenders_the_form_with_an_inline_error(
    client: BufferedClient,
) -> None:
    response = login(client, "alice", "not-the-password")

    assert response.status_code == 401
    assert response.content_type == "text/html; charset=utf-8"
    assert 'role="alert"' in error_paragraph(response)
    assert "Wrong user name or password." in error_paragraph(response)
    assert 'name="csrf_token"' in response.get_data(as_text=True)
    assert session_cookie(client) is None


def test_retry_with_the_rerendered_form_signs_in(client: BufferedClient) -> None:
    failed = login(client, "alice", "not-the-password")
    data = {**hidden_fields(failed), "user": "alice", "password": PASSWORDS["alice"]}

    assert client.post("/_gate/login", data=data).status_code == 303
    assert client.get("/report.html").status_code == 200


@pytest.mark.parametrize("failed", [False, True], ids=["fresh", "after-failure"])
def test_login_page_is_accessible_and_self_contained(
    client: BufferedClient, failed: bool
) -> None:
    if failed:
        response = login(client, "alice", "not-the-password")
    else:
        response = client.get("/_gate/login")
    page = parse_page(response)
    text = response.get_data(as_text=True)

    inputs = {attrs.get("id"): attrs for attrs in page.all("input") if attrs.get("id")}
    labels = [attrs.get("for") for attrs in page.all("label")]
    assert sorted(labels) == sorted(inputs) == ["password", "user"]
    assert inputs["user"]["autocomplete"] == "username"
    assert inputs["password"]["autocomplete"] == "current-password"
    viewports = [m for m in page.all("meta") if m.get("name") == "viewport"]
    assert viewports and "width=device-width" in (viewports[0]["content"] or "")
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", text)


def test_reflected_values_are_escaped(client: BufferedClient) -> None:
    hostile = '/x"><script>alert(1)</script>'
    response = login(client, '"><script>alert(2)</script>', "x", next_path=hostile)

    assert response.status_code == 401
    assert "<script" not in response.get_data(as_text=True).lower()


def test_credentials_in_the_query_string_never_sign_in(
    client: BufferedClient,
) -> None:
    query = {"user": "alice", "password": PASSWORDS["alice"]}

    response = client.get("/_gate/login", query_string=query)

    assert response.status_code == 200
    assert COOKIE not in set_cookies(response)
    assert client.get("/report.html").status_code == 303


def test_unknown_user_and_wrong_password_look_the_same(
    gate: Gate,
) -> None:
    unknown = login(BufferedClient(gate), "mallory", "whatever-password")
    wrong = login(BufferedClient(gate), "alice", "whatever-password")

    assert unknown.status_code == wrong.status_code == 401
    assert error_paragraph(unknown) == error_paragraph(wrong)

    def masked(response: TestResponse) -> str:
        text = response.get_data(as_text=True)
        return re.sub(r'(value|nonce)="[^"]*"', r'\1=""', text)

    assert masked(unknown) == masked(wrong)


# -- shared password ----------------------------------------------------------


def test_shared_password_form_asks_only_for_the_password(shared_gate: Gate) -> None:
    page = parse_page(BufferedClient(shared_gate).get("/_gate/login"))

    visible = [a for a in page.all("input") if a.get("type") != "hidden"]
    assert [attrs["name"] for attrs in visible] == ["password"]


def test_shared_password_signs_in(shared_gate: Gate) -> None:
    client = BufferedClient(shared_gate)

    assert login(client, "", SHARED_PASSWORD).status_code == 303
    assert client.get("/report.html").status_code == 200


def test_wrong_shared_password_is_refused(shared_gate: Gate) -> None:
    client = BufferedClient(shared_gate)

    response = login(client, "", "not-the-shared-password")

    assert response.status_code == 401
    assert "Wrong password." in error_paragraph(response)
    assert client.get("/report.html").status_code == 303


def test_user_field_is_optional_with_users_and_shared_password(
    both_gate: Gate,
) -> None:
    page = parse_page(BufferedClient(both_gate).get("/_gate/login"))

    user = next(a for a in page.all("input") if a.get("name") == "user")
    assert "required" not in user
    assert user["aria-describedby"] == "user-hint"


@pytest.mark.parametrize(
    ("user", "password"),
    [("", SHARED_PASSWORD), ("alice", PASSWORDS["alice"])],
    ids=["shared", "named"],
)
def test_both_modes_sign_in(both_gate: Gate, user: str, password: str) -> None:
    client = BufferedClient(both_gate)

    assert login(client, user, password).status_code == 303
    assert client.get("/report.html").status_code == 200


def test_shared_password_does_not_sign_in_a_named_user(both_gate: Gate) -> None:
    response = login(BufferedClient(both_gate), "alice", SHARED_PASSWORD)

    assert response.status_code == 401


# -- CSRF ---------------------------------------------------------------------


def no_token(gate: Gate) -> str | None:
    return None


def token_from_another_browser(gate: Gate) -> str | None:
    return form_token(BufferedClient(gate).get("/_gate/login"))


def token_for_another_nonce(gate: Gate) -> str | None:
    return gate.login_views.login_tokens.issue("some-other-nonce")


def forged_token(gate: Gate) -> str | None:
    return "InNvbWUtb3RoZXItbm9uY2Ui.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.mark.parametrize(
    "make_token",
    [no_token, token_from_another_browser, token_for_another_nonce, forged_token],
)
def test_login_without_a_valid_form_token_is_refused(
    gate: Gate, make_token: Callable[[Gate], str | None]
) -> None:
    client = BufferedClient(gate)
    client.get("/_gate/login")
    data = {"user": "alice", "password": PASSWORDS["alice"], "next": "/"}
    token = make_token(gate)
    if token is not None:
        data["csrf_token"] = token

    response = client.post("/_gate/login", data=data)

    assert response.status_code == 400
    assert '<form method="post" action="/_gate/login">' in response.get_data(
        as_text=True
    )
    assert COOKIE not in set_cookies(response)
    assert session_cookie(client) is None
    assert client.get("/report.html").status_code == 303


def test_login_without_the_nonce_cookie_is_refused(client: BufferedClient) -> None:
    token = form_token(client.get("/_gate/login"))
    client.delete_cookie("static_gate_login", path="/_gate/")

    response = client.post(
        "/_gate/login",
        data={"csrf_token": token, "user": "alice", "password": PASSWORDS["alice"]},
    )

    assert response.status_code == 400
    assert session_cookie(client) is None


def test_login_nonce_cookie_is_scoped_to_the_gate_pages(
    client: BufferedClient,
) -> None:
    response = client.get("/_gate/login")

    value, options = set_cookies(response)["static_gate_login"]
    assert value
    assert options["path"] == "/_gate/"
    assert "httponly" in options
    assert options["samesite"] == "Lax"


def test_successful_login_clears_the_nonce_cookie(client: BufferedClient) -> None:
    response = login(client)

    value, options = set_cookies(response)["static_gate_login"]
    assert value == ""
    assert options["max-age"] == "0"
    assert options["path"] == "/_gate/"


# -- session fixation ---------------------------------------------------------


def garbage_cookie(gate: Gate) -> str:
    return "attacker-chosen-value"


def another_browsers_session(gate: Gate) -> str:
    other = BufferedClient(gate)
    login(other, "carol")
    value = session_cookie(other)
    assert value
    return value


@pytest.mark.parametrize("plant", [garbage_cookie, another_browsers_session])
def test_login_never_keeps_a_planted_session_cookie(
    gate: Gate, clock: FakeClock, plant: Callable[[Gate], str]
) -> None:
    client = BufferedClient(gate)
    token = form_token(client.get("/_gate/login"))
    planted = plant(gate)
    client.set_cookie(COOKIE, planted)

    response = client.post(
        "/_gate/login",
        data={"csrf_token": token, "user": "alice", "password": PASSWORDS["alice"]},
    )

    issued = set_cookies(response)[COOKIE][0]
    assert issued != planted
    session = gate.sessions.load(issued, clock.now).session
    assert session is not None and session.user == "alice"
    old = gate.sessions.load(planted, clock.now).session
    assert old is None or old.id != session.id


def test_each_login_starts_a_new_session_id(gate: Gate, clock: FakeClock) -> None:
    client = BufferedClient(gate)
    ids = []
    for _ in range(2):
        login(client)
        session = gate.sessions.load(session_cookie(client), clock.now).session
        assert session is not None
        ids.append(session.id)
        logout(client)

    assert ids[0] != ids[1]


# -- where a login leads --------------------------------------------------------

HOSTILE_NEXT = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "//user@evil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%5Cevil",
    "/\t/evil.example",
    "/%0a/evil",
    "/_gate/logout",
]


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_login_never_redirects_off_site(client: BufferedClient, next_path: str) -> None:
    response = login(client, next_path=next_path)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_login_form_drops_a_hostile_next(
    client: BufferedClient, next_path: str
) -> None:
    page = client.get("/_gate/login", query_string={"next": next_path})

    assert hidden_fields(page)["next"] == "/"


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_signed_in_login_page_never_redirects_off_site(
    gate: Gate, next_path: str
) -> None:
    client = signed_in(gate)

    response = client.get("/_gate/login", query_string={"next": next_path})

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


SAFE_NEXT = [
    "/report.html?x=1",
    "/staff/grades.html",
    "/public/?a=1&b=2",
    "/r%C3%A9sum%C3%A9.html",
    "/my%20report.html",
    "/report.html?q=a%20b",
]


@pytest.mark.parametrize("next_path", SAFE_NEXT)
def test_login_follows_a_same_site_next(client: BufferedClient, next_path: str) -> None:
    response = login(client, next_path=next_path)

    assert response.headers["Location"] == next_path


def test_signed_in_login_page_redirects_to_next(gate: Gate) -> None:
    client = signed_in(gate)

    response = client.get("/_gate/login", query_string={"next": "/report.html?x=1"})

    assert response.status_code == 303
    assert response.headers["Location"] == "/report.html?x=1"


# -- sign out -----------------------------------------------------------------


def test_logout_page_asks_for_confirmation_and_keeps_the_session(gate: Gate) -> None:
    client = signed_in(gate)

    page = client.get("/_gate/logout")

    assert page.status_code == 200
    assert '<form method="post" action="/_gate/logout">' in page.get_data(as_text=True)
    assert form_token(page)
    assert COOKIE not in set_cookies(page)
    assert client.get("/report.html").status_code == 200


def test_logout_clears_the_cookie_and_says_so(gate: Gate) -> None:
    client = signed_in(gate)

    response = logout(client)

    assert response.status_code == 303
    assert response.headers["Location"] == "/_gate/login?signed_out"
    value, options = set_cookies(response)[COOKIE]
    assert value == ""
    assert options["max-age"] == "0"
    assert options["path"] == "/"
    notice = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You are signed out." in notice
    assert client.get("/report.html").status_code == 303


def test_logout_with_another_sessions_token_is_refused(gate: Gate) -> None:
    client = signed_in(gate, "alice")
    other_token = form_token(signed_in(gate, "carol").get("/_gate/logout"))

    response = client.post("/_gate/logout", data={"csrf_token": other_token})

    assert response.status_code == 400
    assert COOKIE not in set_cookies(response)
    assert client.get("/report.html").status_code == 200


def test_logout_without_a_token_is_refused(gate: Gate) -> None:
    client = signed_in(gate)

    response = client.post("/_gate/logout")

    assert response.status_code == 400
    assert COOKIE not in set_cookies(response)
    assert client.get("/report.html").status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_without_a_session_goes_to_login(
    client: BufferedClient, method: str
) -> None:
    response = client.open("/_gate/logout", method=method)

    assert response.status_code == 303
    assert response.headers["Location"] == "/_gate/login"


def test_cookie_copied_before_logout_is_refused_after_it(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    """Sign-out ends the session in the store, not only in this browser."""
    client = signed_in(gate)
    copied = session_cookie(client)
    assert copied
    logout(client)

    thief = BufferedClient(gate)
    thief.set_cookie(COOKIE, copied)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = thief.get("/report.html")

    assert response.status_code == 303
    assert "session-revoked user='alice'" in caplog.text


# -- limits -------------------------------------------------------------------


def oversized_urlencoded(client: BufferedClient, token: str) -> TestResponse:
    data = {"csrf_token": token, "user": "alice", "password": "x" * 5000}
    return client.post("/_gate/login", data=data)


def oversized_multipart(client: BufferedClient, token: str) -> TestResponse:
    data = {"csrf_token": token, "user": "alice", "password": "x" * 5000}
    return client.post("/_gate/login", data=data, content_type="multipart/form-data")


def streamed(client: BufferedClient, token: str) -> TestResponse:
    """A body without Content-Length, as a server passes on a chunked request."""
    body = (
        f"csrf_token={token}&user=alice&password={PASSWORDS['alice']}"
        f"&padding={'x' * 5000}"
    ).encode()
    return client.post(
        "/_gate/login",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )


@pytest.mark.parametrize("send", [oversized_urlencoded, oversized_multipart])
def test_oversized_login_form_is_refused_with_413(
    client: BufferedClient, send: Callable[[BufferedClient, str], TestResponse]
) -> None:
    token = form_token(client.get("/_gate/login"))

    response = send(client, token)

    assert response.status_code == 413
    assert session_cookie(client) is None


def test_login_form_without_a_length_is_refused_with_411(
    client: BufferedClient,
) -> None:
    """A chunked body could not be limited without being cut silently."""
    token = form_token(client.get("/_gate/login"))

    response = streamed(client, token)

    assert response.status_code == 411
    assert session_cookie(client) is None


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("a" * 65, "whatever-password"),
        ("alice" + "x" * 200, PASSWORDS["alice"]),
        ("alice", "x" * 1025),
        ("alice", PASSWORDS["alice"] + "x" * 1024),
    ],
    ids=["long-user", "long-user-right-password", "long-password", "padded-password"],
)
def test_overlong_credentials_are_refused_with_401(
    client: BufferedClient, user: str, password: str
) -> None:
    response = login(client, user, password)

    assert response.status_code == 401
    assert session_cookie(client) is None


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_login_page_refuses_other_methods(client: BufferedClient, method: str) -> None:
    response = client.open("/_gate/login", method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"


# -- audit log ----------------------------------------------------------------


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == AUDIT]


def test_successful_login_is_logged_at_info(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT)

    login(EnvironClient(gate, REMOTE_ADDR=PEER), "alice")

    assert (logging.INFO, f"login user='alice' client={PEER}") in audit_lines(caplog)


def test_failed_login_is_logged_with_the_name_as_entered(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT)

    login(EnvironClient(gate, REMOTE_ADDR=PEER), "Mallory", "whatever-password")

    assert (
        logging.WARNING,
        f"login-failed user='Mallory' client={PEER} reason=wrong user name or password",
    ) in audit_lines(caplog)


def test_logout_is_logged_at_info(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    client = signed_in(gate, "alice", REMOTE_ADDR=PEER)
    caplog.set_level(logging.INFO, logger=AUDIT)

    logout(client)

    assert (logging.INFO, f"logout user='alice' client={PEER}") in audit_lines(caplog)


def test_access_denied_is_logged_at_warning(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(gate, "bob", REMOTE_ADDR=PEER)
    caplog.set_level(logging.INFO, logger=AUDIT)

    client.get("/staff/grades.html")

    assert (
        logging.WARNING,
        f"access-denied user='bob' client={PEER} path='/staff/grades.html' "
        "rule='/staff/' reason=user not listed",
    ) in audit_lines(caplog)


def test_user_name_cannot_forge_an_audit_line(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT)
    forged = "x\nlogin user='carol' client=192.0.2.1"

    login(EnvironClient(gate, REMOTE_ADDR=PEER), forged, "whatever-password")

    lines = audit_lines(caplog)
    assert lines
    assert all("\n" not in message for _, message in lines)


def test_no_secret_reaches_any_log_record(
    gate: Gate, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_password = "alice-password-1-typo"
    client = BufferedClient(gate)
    login(client, "alice", wrong_password)
    login(client, "alice")
    cookie = session_cookie(client)
    assert cookie
    client.get("/admins/keys.html")
    tampered = BufferedClient(gate)
    tampered.set_cookie(COOKIE, cookie[:-3] + "abc")
    tampered.get("/report.html")
    logout(client)
    clock.advance(3600)
    stale = BufferedClient(gate)
    stale.set_cookie(COOKIE, cookie)
    stale.get("/report.html")

    hashes = [
        line.split(":")[1]
        for line in (tmp_path / "users.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    signature = cookie.rsplit(".", 1)[1]
    secrets = [*PASSWORDS.values(), wrong_password, *hashes, cookie, signature, KEY]
    messages = [record.getMessage() for record in caplog.records]
    assert any("login-failed" in message for message in messages)
    assert any("session-rejected" in message for message in messages)
    for secret in secrets:
        assert not [m for m in messages if secret in m], secret
