"""Who may open what, and requests that try to get around the rules."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any

import pytest
from werkzeug.test import TestResponse

from conftest import (
    BufferedClient,
    FakeClock,
    signed_in,
)
from static_gate import GROUPS_KEY, USER_KEY, Gate

PROTECTIVE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
OUTSIDE = b"outside the root"

# A public folder that browsers and shared caches may keep for a minute.
CACHED_PUBLIC = [
    {"path": "/public/", "allow": "anyone", "cache_control": "public, max-age=60"}
]


def assert_protected(response: TestResponse) -> None:
    assert response.headers["Cache-Control"] == "private, no-store"
    assert_common_headers(response)


def assert_common_headers(response: TestResponse) -> None:
    for name, value in PROTECTIVE_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "Cookie" in ", ".join(response.headers.getlist("Vary"))


def login_location(path: str) -> str:
    return "/_gate/login?next=" + path.replace("/", "%2F")


# -- rules --------------------------------------------------------------------

ACCESS = [
    # user, path, status
    (None, "/public/", 200),
    (None, "/staff/grades.html", 303),
    (None, "/admins/keys.html", 303),
    (None, "/report.html", 303),
    ("alice", "/public/", 200),
    ("alice", "/staff/grades.html", 200),
    ("alice", "/admins/keys.html", 403),
    ("alice", "/report.html", 200),
    ("bob", "/public/", 200),
    ("bob", "/staff/grades.html", 403),
    ("bob", "/admins/keys.html", 403),
    ("bob", "/report.html", 200),
    ("carol", "/public/", 200),
    ("carol", "/staff/grades.html", 200),
    ("carol", "/admins/keys.html", 200),
    ("carol", "/report.html", 200),
]


@pytest.mark.parametrize(("user", "path", "status"), ACCESS)
def test_rules_decide_who_may_open_a_path(
    gate: Gate, user: str | None, path: str, status: int
) -> None:
    response = signed_in(gate, user).get(path)

    assert response.status_code == status
    if status == 303:
        assert response.headers["Location"] == login_location(path)
    if status != 200:
        assert b"grades" not in response.data
        assert b"admins only" not in response.data


def test_refused_user_gets_a_403_page_with_a_sign_out_link(gate: Gate) -> None:
    response = signed_in(gate, "bob").get("/staff/grades.html")

    assert response.status_code == 403
    assert response.content_type == "text/html; charset=utf-8"
    text = response.get_data(as_text=True)
    assert "<strong>bob</strong>" in text
    assert 'href="/_gate/logout"' in text
    assert "Location" not in response.headers


def test_closed_rule_refuses_even_anonymous_visitors(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(rules=[{"path": "/staff/", "allow": "nobody"}])

    for user in (None, "carol"):
        response = signed_in(gate, user).get("/staff/grades.html")
        assert response.status_code == 403
        assert b"staff grades" not in response.data


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
)
def test_every_method_on_a_protected_path_needs_a_session(
    client: BufferedClient, method: str
) -> None:
    response = client.open("/staff/grades.html", method=method)

    assert response.status_code == 303
    assert response.headers["Location"] == login_location("/staff/grades.html")


def test_method_override_header_changes_nothing(gate: Gate) -> None:
    override = {"X-HTTP-Method-Override": "GET", "X-Method-Override": "GET"}
    anonymous = BufferedClient(gate).post("/staff/grades.html", headers=override)
    alice = signed_in(gate, "alice").post("/staff/grades.html", headers=override)

    assert anonymous.status_code == 303
    assert alice.status_code == 405
    assert b"staff grades" not in alice.data


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize(
    ("user", "path"), [("alice", "/report.html"), (None, "/public/index.html")]
)
def test_files_can_only_be_read(
    gate: Gate, user: str | None, path: str, method: str
) -> None:
    response = signed_in(gate, user).open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert_common_headers(response)


@pytest.mark.parametrize(
    "header",
    [
        "X-Original-URL",
        "X-Original-URI",
        "X-Rewrite-URL",
        "X-Forwarded-Uri",
        "X-Forwarded-Path",
        "X-Forwarded-Prefix",
        "X-Envoy-Original-Path",
    ],
)
def test_headers_cannot_change_the_path(client: BufferedClient, header: str) -> None:
    response = client.get("/staff/grades.html", headers={header: "/public/index.html"})

    assert response.status_code == 303
    assert response.headers["Location"] == login_location("/staff/grades.html")


# -- wrap mode ----------------------------------------------------------------


def echo_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """A small WSGI app that answers with what it was given."""
    seen = {
        "keys": sorted(environ),
        "remote_user": environ.get("REMOTE_USER"),
        "user": environ.get(USER_KEY),
        "groups": sorted(environ.get(GROUPS_KEY, ())),
        "path": environ.get("PATH_INFO"),
        "method": environ.get("REQUEST_METHOD"),
    }
    start_response(
        "201 Created",
        [
            ("Content-Type", "application/json"),
            ("Cache-Control", "public, max-age=3600"),
            ("X-Frame-Options", "ALLOWALL"),
            ("X-App", "echo"),
            ("Set-Cookie", "app_cookie=1; Path=/"),
        ],
    )
    return [json.dumps(seen).encode()]


@pytest.fixture
def wrapped(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate(
        app=echo_app,
        rules=[
            {"path": "/public/", "allow": "anyone"},
            {"path": "/staff/", "groups": ["staff"]},
        ],
    )


SPOOFED = {
    "Remote-User": "carol",
    "X-Remote-User": "carol",
    "X-Forwarded-User": "carol",
    "X-Auth-Request-User": "carol",
    "X-User": "carol",
    "X-Forwarded-Groups": "admins",
    "X-Original-URL": "/admins/",
    "X-Rewrite-URL": "/admins/",
    "X-Forwarded-Uri": "/admins/",
}
SPOOFED_KEYS = {"HTTP_" + name.upper().replace("-", "_") for name in SPOOFED}


def test_wrapped_app_sees_the_signed_in_user_only(wrapped: Gate) -> None:
    client = signed_in(wrapped, "alice")

    response = client.get("/staff/report", headers=SPOOFED)

    assert response.status_code == 201
    seen = response.json
    assert seen is not None
    assert SPOOFED_KEYS.isdisjoint(seen["keys"])
    assert seen["remote_user"] == "alice"
    assert seen["user"] == "alice"
    assert seen["groups"] == ["staff"]
    assert seen["path"] == "/staff/report"


@pytest.mark.parametrize("spoof_environ", [False, True], ids=["headers", "environ"])
def test_anonymous_request_reaches_a_public_app_path_without_a_user(
    wrapped: Gate, spoof_environ: bool
) -> None:
    environ = {"REMOTE_USER": "carol"} if spoof_environ else {}

    response = BufferedClient(wrapped).get(
        "/public/page", headers=SPOOFED, environ_overrides=environ
    )

    assert response.status_code == 201
    seen = response.json
    assert seen is not None
    assert SPOOFED_KEYS.isdisjoint(seen["keys"])
    assert "REMOTE_USER" not in seen["keys"]
    assert USER_KEY not in seen["keys"]
    assert GROUPS_KEY not in seen["keys"]


def test_wrapped_app_is_not_reached_without_a_session(wrapped: Gate) -> None:
    response = BufferedClient(wrapped).get(
        "/staff/report", environ_overrides={"REMOTE_USER": "carol"}, headers=SPOOFED
    )

    assert response.status_code == 303
    assert response.headers["Location"] == login_location("/staff/report")
    assert "X-App" not in response.headers


def test_refused_user_does_not_reach_the_wrapped_app(wrapped: Gate) -> None:
    response = signed_in(wrapped, "bob").get("/staff/report")

    assert response.status_code == 403
    assert "X-App" not in response.headers


def test_wrapped_app_answer_passes_through_with_the_gate_headers(
    wrapped: Gate,
) -> None:
    response = signed_in(wrapped, "alice").post("/staff/report?x=1", data={"a": "b"})

    assert response.status_code == 201
    assert response.headers["X-App"] == "echo"
    assert response.headers["Content-Type"] == "application/json"
    assert "app_cookie=1; Path=/" in response.headers.getlist("Set-Cookie")
    assert response.json is not None and response.json["method"] == "POST"
    assert response.headers.getlist("Cache-Control") == ["private, no-store"]
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert_protected(response)


def test_wrapped_public_rule_sends_its_own_cache_control(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(
        app=echo_app,
        rules=[{"path": "/public/", "allow": "anyone", "cache_control": "max-age=60"}],
    )

    response = BufferedClient(gate).get("/public/page")

    assert response.headers.getlist("Cache-Control") == ["max-age=60"]


# -- hostile paths --------------------------------------------------------------

HOSTILE_PATH_INFO = {
    # id: PATH_INFO as a server hands it over: decoded, bytes as Latin-1.
    "encoded-slashes": "/../../outside.txt",  # /..%2f..%2foutside.txt
    "encoded-dots": "/../outside.txt",  # /%2e%2e/outside.txt
    "climb": "/a/../../outside.txt",
    "climb-from-public": "/public/../../outside.txt",
    "backslashes": "/public\\..\\..\\outside.txt",
    "backslash-start": "\\..\\outside.txt",
    "no-leading-slash": "../outside.txt",
    "nul": "/report.html\x00.txt",  # /report.html%00.txt
    "double-encoded-dots": "/%2e%2e/outside.txt",  # /%252e%252e/outside.txt
    "double-encoded-nul": "/report.html%00",  # /report.html%2500
    "path-parameter": "/report.html;jsessionid=x",
    "trailing-dot": "/report.html.",
    "trailing-space": "/report.html ",
    "not-utf8": "/report\xff.html",
    "overlong-utf8-dot": "/\xc0\xae\xc0\xae/outside.txt",
    "control-char": "/report\x01.html",
    "delete-char": "/report\x7f.html",
    "c1-control": "/report\xc2\x85.html",  # U+0085 as UTF-8
    "newline": "/report.html\r\nX-Injected: 1",
    "long-path": "/" + "a/" * 1500,
    "long-segment": "/" + "a" * 300,
}


@pytest.mark.parametrize("user", [None, "carol"], ids=["anonymous", "carol"])
@pytest.mark.parametrize(
    "path_info", list(HOSTILE_PATH_INFO.values()), ids=list(HOSTILE_PATH_INFO)
)
def test_hostile_path_is_refused(gate: Gate, user: str | None, path_info: str) -> None:
    client = signed_in(gate, user)

    response = client.get("/", environ_overrides={"PATH_INFO": path_info})

    assert response.status_code in (400, 414)
    assert OUTSIDE not in response.data
    assert "X-Injected" not in response.headers
    assert_protected(response)


@pytest.mark.parametrize(
    "url",
    [
        "/..%2f..%2foutside.txt",
        "/%2e%2e/outside.txt",
        "/%252e%252e/outside.txt",
        "/report.html%00",
        "/report.html;jsessionid=x",
        "/public/%5c..%5c..%5coutside.txt",
    ],
)
def test_hostile_url_through_the_client_is_refused(gate: Gate, url: str) -> None:
    response = signed_in(gate, "carol").get(url)

    assert response.status_code == 400
    assert OUTSIDE not in response.data


@pytest.mark.parametrize(
    ("path_info", "query", "location"),
    [
        ("/public//index.html", "q=1", "/public/index.html?q=1"),
        ("/public/./index.html", "", "/public/index.html"),
        ("/staff/../public/index.html", "a=1&b=2", "/public/index.html?a=1&b=2"),
        ("//public/index.html", "", "/public/index.html"),
        ("/public/.", "", "/public/"),
        ("/public/sub/..", "", "/public/"),
    ],
)
def test_harmless_odd_path_redirects_to_the_canonical_one(
    client: BufferedClient, path_info: str, query: str, location: str
) -> None:
    response = client.get(
        "/", environ_overrides={"PATH_INFO": path_info, "QUERY_STRING": query}
    )

    assert response.status_code == 308
    assert response.headers["Location"] == location
    assert_protected(response)


def test_rule_is_judged_on_the_canonical_path(client: BufferedClient) -> None:
    odd = client.get(
        "/", environ_overrides={"PATH_INFO": "/public/../staff/grades.html"}
    )
    assert odd.status_code == 308
    assert odd.headers["Location"] == "/staff/grades.html"
    assert b"staff grades" not in odd.data

    response = client.get(odd.headers["Location"])

    assert response.status_code == 303
    assert response.headers["Location"] == login_location("/staff/grades.html")


def test_redirect_query_cannot_split_the_header(client: BufferedClient) -> None:
    response = client.get(
        "/",
        environ_overrides={
            "PATH_INFO": "/public//index.html",
            "QUERY_STRING": "a=1\r\nSet-Cookie: x=1",
        },
    )

    assert response.status_code in (308, 400)
    assert "\n" not in response.headers.get("Location", "")
    assert not any("x=1" in c for c in response.headers.getlist("Set-Cookie"))


# -- size limits ----------------------------------------------------------------


def test_oversized_cookie_header_gets_431(client: BufferedClient) -> None:
    # The test client builds the Cookie header from its own jar.
    for name in "abc":
        client.set_cookie(name, "x" * 2800)

    response = client.get("/public/index.html")

    assert response.status_code == 431
    assert b"public page" not in response.data
    assert_protected(response)


def test_oversized_query_string_gets_414(client: BufferedClient) -> None:
    response = client.get("/public/index.html", query_string="q=" + "x" * 4100)

    assert response.status_code == 414
    assert_protected(response)


def test_cookie_and_query_just_under_the_limits_are_served(
    client: BufferedClient,
) -> None:
    for name in "ab":
        client.set_cookie(name, "x" * 4000)

    response = client.get("/public/index.html", query_string="q=" + "x" * 4000)

    assert response.status_code == 200


# -- headers on every answer ----------------------------------------------------

ANSWERS = [
    # who, path, request headers, expected status
    ("alice", "/report.html", {}, 200),
    ("alice", "/report.html", {"If-None-Match": "*"}, 304),
    ("alice", "/report.html", {"Range": "bytes=0-9"}, 206),
    ("alice", "/report.html", {"Range": "bytes=900-999"}, 416),
    ("alice", "/admins/keys.html", {}, 403),
    ("alice", "/missing.html", {}, 404),
    ("alice", "/folder", {}, 308),
    ("alice", "/_gate/login", {}, 303),
    ("alice", "/_gate/logout", {}, 200),
    ("alice", "/_gate/nothing", {}, 404),
    (None, "/staff/grades.html", {}, 303),
    (None, "/_gate/login", {}, 200),
    (None, "/public/missing.html", {}, 404),
]


@pytest.mark.parametrize(("user", "path", "request_headers", "status"), ANSWERS)
def test_every_answer_carries_the_protective_headers(
    gate: Gate,
    user: str | None,
    path: str,
    request_headers: dict[str, str],
    status: int,
) -> None:
    response = signed_in(gate, user).get(path, headers=request_headers)

    assert response.status_code == status
    assert_protected(response)


def test_public_rule_can_set_its_own_cache_control(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(rules=CACHED_PUBLIC)

    response = BufferedClient(gate).get("/public/index.html")

    assert response.status_code == 200
    assert response.headers.getlist("Cache-Control") == ["public, max-age=60"]
    assert_common_headers(response)


def test_publicly_cacheable_answer_never_sets_a_cookie(
    make_gate: Callable[..., Gate], clock: FakeClock
) -> None:
    """A shared cache could hand a stored Set-Cookie to someone else."""
    gate = make_gate(rules=CACHED_PUBLIC)
    client = signed_in(gate)
    clock.advance(gate.sessions.refresh_after + 1)

    public = client.get("/public/index.html")
    protected = client.get("/report.html")

    assert public.headers.getlist("Set-Cookie") == []
    assert protected.headers.getlist("Set-Cookie") != []


def test_public_cache_control_does_not_reach_protected_paths(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(rules=CACHED_PUBLIC)

    response = signed_in(gate, "alice").get("/report.html")

    assert response.headers.getlist("Cache-Control") == ["private, no-store"]


# -- failures -------------------------------------------------------------------


def test_internal_error_gives_a_plain_500_page(
    gate: Gate, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(gate, "alice")

    def broken(path: str) -> Any:
        raise RuntimeError("disk gone at /srv/private/area")

    assert gate.folder is not None
    monkeypatch.setattr(gate.folder, "find", broken)
    caplog.set_level(logging.ERROR, logger="static_gate")

    response = client.get("/report.html")

    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "disk gone" not in text
    assert "RuntimeError" not in text
    assert version("static-gate") not in text
    assert_protected(response)
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is RuntimeError


PAGES = [
    (None, "/_gate/login", {}),
    (None, "/staff/grades.html", {}),
    ("alice", "/_gate/logout", {}),
    ("alice", "/admins/keys.html", {}),
    ("alice", "/missing.html", {}),
    ("alice", "/nolist/", {}),
    (None, "/%2e%2e/x", {}),
    (None, "/" + "a" * 3000, {}),
    ("alice", "/_gate/login?next=/x", {"X-HTTP-Method-Override": "PUT"}),
]


@pytest.mark.parametrize(("user", "path", "request_headers"), PAGES)
def test_no_page_shows_a_traceback_or_the_version(
    gate: Gate, user: str | None, path: str, request_headers: dict[str, str]
) -> None:
    client = signed_in(gate, user)

    for method in ("GET", "POST", "PUT"):
        response = client.open(path, method=method, headers=request_headers)
        text = response.get_data(as_text=True) + str(response.headers)
        assert "Traceback" not in text
        assert version("static-gate") not in text
        assert "Werkzeug" not in text
        assert response.status_code < 500
