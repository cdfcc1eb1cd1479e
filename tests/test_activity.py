"""What keeps a session alive: page navigations, and "keep me signed in"."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import (
    PASSWORDS,
    BufferedClient,
    FakeClock,
    form_token,
    set_cookies,
    signed_in,
)
from static_gate import ConfigError, Gate
from static_gate.keys import SecretKey
from static_gate.session import TAMPERED, SessionCodec, make_signer
from static_gate.visit import is_navigation

IDLE = 30 * 60
ASSET = {"Accept": "image/avif,image/webp,*/*", "Sec-Fetch-Mode": "no-cors"}
POLL = {"Accept": "*/*", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
PAGE = {
    "Accept": "text/html",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}


@pytest.mark.parametrize(
    ("headers", "method", "expected"),
    [
        (
            {"HTTP_SEC_FETCH_MODE": "navigate", "HTTP_SEC_FETCH_DEST": "document"},
            "GET",
            True,
        ),
        ({"HTTP_SEC_FETCH_MODE": "navigate"}, "GET", True),
        (
            {"HTTP_SEC_FETCH_MODE": "navigate", "HTTP_SEC_FETCH_DEST": "iframe"},
            "GET",
            False,
        ),
        ({"HTTP_SEC_FETCH_MODE": "no-cors", "HTTP_ACCEPT": "text/html"}, "GET", False),
        ({"HTTP_SEC_FETCH_MODE": "cors"}, "GET", False),
        ({"HTTP_ACCEPT": "text/html,application/xhtml+xml"}, "GET", True),
        ({"HTTP_ACCEPT": "text/html"}, "POST", False),
        ({"HTTP_ACCEPT": "image/png"}, "GET", False),
        ({}, "GET", False),
    ],
)
def test_is_navigation(headers: dict[str, str], method: str, expected: bool) -> None:
    assert is_navigation({"REQUEST_METHOD": method, **headers}) is expected


def test_navigation_keeps_the_session_alive(gate: Gate, clock: FakeClock) -> None:
    client = signed_in(gate)
    for _ in range(4):
        clock.advance(IDLE - 60)
        assert client.get("/report.html", headers=PAGE).status_code == 200


def test_assets_and_polling_do_not_keep_it_alive(gate: Gate, clock: FakeClock) -> None:
    """An open tab that polls is signed out after the idle timeout."""
    client = signed_in(gate)
    for _ in range(3):
        clock.advance(IDLE // 3 - 1)
        assert client.get("/data/big.csv", headers=POLL).status_code == 200
        assert client.get("/public/style.css", headers=ASSET).status_code == 200

    clock.advance(10)

    assert client.get("/report.html", headers=PAGE).status_code == 303


def test_assets_of_a_page_load_while_it_is_read(gate: Gate, clock: FakeClock) -> None:
    """A long read does not break the page's late images."""
    client = signed_in(gate)
    clock.advance(120)
    assert client.get("/report.html", headers=PAGE).status_code == 200

    clock.advance(IDLE - 60)

    assert client.get("/data/big.csv", headers=ASSET).status_code == 200


# -- keep me signed in ----------------------------------------------------------


@pytest.fixture
def remembering(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate(
        session={"remember_lifetime": "30d", "remember_idle_timeout": "7d"}
    )


def sign_in(gate: Gate, remember: bool) -> BufferedClient:
    client = BufferedClient(gate)
    page = client.get("/_gate/login")
    form = {
        "csrf_token": form_token(page),
        "user": "alice",
        "password": PASSWORDS["alice"],
        "next": "/",
    }
    if remember:
        form["remember"] = "yes"
    response = client.post("/_gate/login", data=form)
    assert response.status_code == 303
    client.last_login = response  # type: ignore[attr-defined]
    return client


def test_the_choice_is_offered_only_when_configured(
    gate: Gate, remembering: Gate
) -> None:
    plain = BufferedClient(gate).get("/_gate/login").get_data(as_text=True)
    offered = BufferedClient(remembering).get("/_gate/login").get_data(as_text=True)

    assert 'name="remember"' not in plain
    assert 'name="remember" value="yes"' in offered
    assert "Keep me signed in" in offered


def test_remembered_session_outlives_the_lifetime(
    remembering: Gate, clock: FakeClock
) -> None:
    client = sign_in(remembering, remember=True)
    [(value, attributes)] = [
        cookie
        for name, cookie in set_cookies(client.last_login).items()  # type: ignore[attr-defined]
        if name == "static_gate"
    ]
    assert int(attributes["max-age"]) == 30 * 86400

    for _ in range(4):
        clock.advance(6 * 86400)
        assert client.get("/report.html").status_code == 200

    clock.advance(6 * 86400)  # day 30: the remembered lifetime is over
    assert client.get("/report.html").status_code == 303


def test_remembered_session_still_has_an_idle_timeout(
    remembering: Gate, clock: FakeClock
) -> None:
    client = sign_in(remembering, remember=True)

    clock.advance(7 * 86400)

    assert client.get("/report.html").status_code == 303


def test_without_the_choice_the_usual_lifetime_applies(
    remembering: Gate, clock: FakeClock
) -> None:
    client = sign_in(remembering, remember=False)
    cookies = set_cookies(client.last_login)  # type: ignore[attr-defined]
    assert "max-age" not in cookies["static_gate"][1]

    for _ in range(16):  # 16 x 29 minutes: just under eight hours
        clock.advance(IDLE - 60)
        assert client.get("/report.html").status_code == 200

    clock.advance(IDLE - 60)
    assert client.get("/report.html").status_code == 303


def test_asking_without_the_offer_changes_nothing(gate: Gate, clock: FakeClock) -> None:
    client = sign_in(gate, remember=True)
    clock.advance(8 * 3600)
    assert client.get("/report.html").status_code == 303


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"remember_lifetime": "1h"}, "remember_lifetime (3600 s) is shorter than"),
        (
            {"remember_lifetime": "30d", "remember_idle_timeout": "31d"},
            "remember_idle_timeout (2678400 s) is longer than",
        ),
        ({"remember_idle_timeout": "1d"}, "needs [session] remember_lifetime"),
    ],
)
def test_remember_settings_are_checked(
    make_gate: Callable[..., Gate], session: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_gate(session=session)


def test_the_remember_mark_is_signed() -> None:
    key = SecretKey(b"k" * 40)
    codec = SessionCodec((key,), 3600, 600, 86400, 3600)
    signer = make_signer((key,), "static-gate.session")
    forged = signer.sign("1|id|alice|100|100|fp|x").decode()
    real = codec.dump(codec.start("alice", "fp", 100, remember=True))

    assert codec.load(forged, 100).problem == TAMPERED
    # Past the usual idle timeout (600 s), within the remembered one.
    assert codec.load(real, 100 + 3000).session is not None


def test_remember_is_ignored_by_a_codec_that_does_not_offer_it(
    tmp_path: Path,
) -> None:
    """Removing remember_lifetime shortens remembered sessions at once."""
    key = SecretKey(b"k" * 40)
    offering = SessionCodec((key,), 3600, 600, 86400, 3600)
    plain = SessionCodec((key,), 3600, 600)
    value = offering.dump(offering.start("alice", "fp", 100, remember=True))

    assert plain.load(value, 100 + 599).session is not None
    assert plain.load(value, 100 + 601).session is None
