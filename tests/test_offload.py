"""Offloading to the front server: X-Accel-Redirect, X-Sendfile, auth_request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import EnvironClient, signed_in
from static_gate import Gate

RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/secret.html", "allow": "nobody"},
]
PROXY = "127.0.0.1"
PROTECTIVE = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
def offloading(make_gate: Callable[..., Gate]) -> Callable[[str], Gate]:
    def make(mode: str) -> Gate:
        return make_gate(static={"offload": mode}, rules=RULES)

    return make


def test_x_accel_redirect_names_the_internal_location(
    offloading: Callable[[str], Gate],
) -> None:
    response = signed_in(offloading("x-accel-redirect")).get("/staff/grades.html")

    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == "/_protected/staff/grades.html"
    assert response.data == b""
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_x_accel_redirect_percent_encodes_the_file_name(
    site: Path, offloading: Callable[[str], Gate]
) -> None:
    (site / "a b&c.html").write_text("x")

    response = signed_in(offloading("x-accel-redirect")).get("/a%20b%26c.html")

    assert response.headers["X-Accel-Redirect"] == "/_protected/a%20b&c.html"


def test_x_sendfile_names_the_absolute_file(
    site: Path, offloading: Callable[[str], Gate]
) -> None:
    response = signed_in(offloading("x-sendfile")).get("/report.html")

    assert response.status_code == 200
    assert response.headers["X-Sendfile"] == str((site / "report.html").resolve())
    assert response.data == b""


@pytest.mark.parametrize("mode", ["x-accel-redirect", "x-sendfile"])
def test_offloaded_answers_carry_the_protective_headers(
    offloading: Callable[[str], Gate], mode: str
) -> None:
    response = signed_in(offloading(mode)).get("/report.html")

    for name, value in PROTECTIVE.items():
        assert response.headers[name] == value
    assert "Cookie" in response.headers["Vary"]


@pytest.mark.parametrize("mode", ["x-accel-redirect", "x-sendfile"])
@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        (None, "/report.html", 303),
        ("bob", "/staff/grades.html", 403),
        ("alice", "/secret.html", 403),
        ("alice", "/missing.html", 404),
        ("alice", "/.htaccess", 404),
    ],
)
def test_nothing_is_handed_over_unless_allowed(
    offloading: Callable[[str], Gate],
    mode: str,
    user: str | None,
    path: str,
    status: int,
) -> None:
    response = signed_in(offloading(mode), user).get(path)

    assert response.status_code == status
    assert "X-Accel-Redirect" not in response.headers
    assert "X-Sendfile" not in response.headers


def test_offload_mode_is_checked_at_start_up(make_gate: Callable[..., Gate]) -> None:
    from static_gate import ConfigError

    with pytest.raises(ConfigError, match=r"\[static\] offload must be one of"):
        make_gate(static={"offload": "sendfile"})


# -- the auth_request endpoint ------------------------------------------------


@pytest.fixture
def auth_gate(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate(proxy={"trusted": [PROXY]}, rules=RULES)


def ask(client: EnvironClient, uri: str | None, peer: str = PROXY) -> int:
    headers = {} if uri is None else {"X-Original-URI": uri}
    response = client.get(
        "/_gate/auth", headers=headers, environ_overrides={"REMOTE_ADDR": peer}
    )
    assert response.data == b""
    return response.status_code


@pytest.mark.parametrize(
    ("user", "uri", "status"),
    [
        (None, "/public/index.html", 204),
        (None, "/report.html", 401),
        (None, "/staff/grades.html?x=1", 401),
        ("alice", "/report.html", 204),
        ("alice", "/staff/grades.html", 204),
        ("bob", "/staff/grades.html", 403),
        ("alice", "/secret.html", 403),
        ("alice", "/secret.html.gz", 403),
        ("alice", "/_gate/login", 204),
    ],
)
def test_auth_endpoint_applies_the_rules(
    auth_gate: Gate, user: str | None, uri: str, status: int
) -> None:
    assert ask(signed_in(auth_gate, user, REMOTE_ADDR=PROXY), uri) == status


@pytest.mark.parametrize(
    "uri",
    [
        "/public/../staff/grades.html",
        "/public/%2e%2e/staff/grades.html",
        "/public//index.html",
        "/public/%2Findex.html",
        "//public/index.html",
        "/public/index.html%00",
        "/public/%252e%252e/x",
        "/public/a;b",
        "/public\\index.html",
        "public/index.html",
        "",
    ],
)
def test_auth_endpoint_refuses_non_canonical_uris(auth_gate: Gate, uri: str) -> None:
    """nginx would serve what these resolve to; the rules never saw that."""
    assert ask(signed_in(auth_gate, "alice", REMOTE_ADDR=PROXY), uri) == 403


def test_auth_endpoint_judges_a_folder_by_its_index_too(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(
        proxy={"trusted": [PROXY]},
        rules=[
            {"path": "/folder/", "allow": "anyone"},
            {"path": "/folder/index.html", "allow": "nobody"},
        ],
    )

    assert ask(signed_in(gate, None), "/folder/") == 403


def test_auth_endpoint_believes_only_trusted_proxies(auth_gate: Gate) -> None:
    client = signed_in(auth_gate, "alice")

    assert ask(client, "/report.html", peer="192.0.2.9") == 403
    assert ask(client, "/report.html", peer=PROXY) == 204


def test_auth_endpoint_needs_the_original_uri(auth_gate: Gate) -> None:
    assert ask(signed_in(auth_gate, "alice"), None) == 403


def test_auth_endpoint_names_the_user_for_the_access_log(auth_gate: Gate) -> None:
    client = signed_in(auth_gate, "alice")

    response = client.get(
        "/_gate/auth",
        headers={"X-Original-URI": "/report.html"},
        environ_overrides={"REMOTE_ADDR": PROXY},
    )

    assert response.headers["X-Static-Gate-User"] == "alice"


def test_auth_endpoint_logs_denied_access(
    auth_gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(auth_gate, "bob")

    with caplog.at_level(logging.INFO, logger="static_gate.audit"):
        assert ask(client, "/staff/grades.html") == 403

    assert "access-denied user='bob'" in caplog.text
    assert "path='/staff/grades.html'" in caplog.text


def test_x_original_uri_is_ignored_everywhere_else(auth_gate: Gate) -> None:
    """On any other path the header cannot change what is checked."""
    client = signed_in(auth_gate, None)

    response = client.get(
        "/report.html",
        headers={"X-Original-URI": "/public/index.html"},
        environ_overrides={"REMOTE_ADDR": PROXY},
    )

    assert response.status_code == 303


def test_user_header_names_the_signed_in_user_when_asked(
    make_gate: Callable[..., Gate],
) -> None:
    """For a front server's access log, which removes it again."""
    gate = make_gate(proxy={"user_header": True}, rules=RULES)

    signed = signed_in(gate, "alice").get("/report.html")
    anonymous = signed_in(gate, None).get("/public/index.html")

    assert signed.headers["X-Static-Gate-User"] == "alice"
    assert "X-Static-Gate-User" not in anonymous.headers


def test_user_header_is_off_by_default(offloading: Callable[[str], Gate]) -> None:
    response = signed_in(offloading("none")).get("/report.html")

    assert response.status_code == 200
    assert "X-Static-Gate-User" not in response.headers
