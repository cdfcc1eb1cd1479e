"""Form tokens: bound to one browser and one purpose, signed and short-lived."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from itsdangerous import TimestampSigner

from static_gate.csrf import TOKEN_MAX_AGE, CsrfTokens, new_nonce
from static_gate.keys import SecretKey
from static_gate.session import SessionCodec

NEW = SecretKey(b"n" * 40)
OLD = SecretKey(b"o" * 40)
OTHER = SecretKey(b"x" * 40)

NOW = 1_800_000_000


def tokens(purpose: str = "login", *keys: SecretKey) -> CsrfTokens:
    return CsrfTokens(keys or (NEW,), purpose)


def test_token_checks_for_its_binding() -> None:
    token = tokens().issue("nonce-1")
    assert tokens().check(token, "nonce-1") is True


def test_token_fails_for_another_binding() -> None:
    token = tokens().issue("nonce-1")
    assert tokens().check(token, "nonce-2") is False


def test_token_fails_for_another_purpose() -> None:
    token = tokens("login").issue("nonce-1")

    assert tokens("logout").check(token, "nonce-1") is False
    assert tokens("login").check(token, "nonce-1") is True


@pytest.mark.parametrize("token", [None, ""])
def test_empty_token_fails(token: str | None) -> None:
    assert tokens().check(token, "nonce-1") is False


@pytest.mark.parametrize("binding", [None, ""])
def test_empty_binding_fails(binding: str | None) -> None:
    """A browser without a nonce cookie cannot present any valid token."""
    assert tokens().check(tokens().issue("nonce-1"), binding) is False


def test_token_for_an_empty_binding_never_checks() -> None:
    assert tokens().check(tokens().issue(""), "") is False


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "nonce-1", "\x00", "é"])
def test_forged_token_fails(token: str) -> None:
    assert tokens().check(token, "nonce-1") is False


def test_tampered_token_fails() -> None:
    token = tokens().issue("nonce-1")
    tampered = token[:3] + ("A" if token[3] != "A" else "B") + token[4:]
    assert tokens().check(tampered, "nonce-1") is False


def test_token_signed_with_another_key_fails() -> None:
    token = tokens("login", OTHER).issue("nonce-1")
    assert tokens("login", NEW).check(token, "nonce-1") is False


def test_token_survives_key_rotation() -> None:
    token = tokens("login", OLD).issue("nonce-1")
    assert tokens("login", NEW, OLD).check(token, "nonce-1") is True


def test_new_tokens_are_signed_with_the_first_key() -> None:
    token = tokens("login", NEW, OLD).issue("nonce-1")

    assert tokens("login", NEW).check(token, "nonce-1") is True
    assert tokens("login", OLD).check(token, "nonce-1") is False


def test_session_cookie_is_not_a_token() -> None:
    codec = SessionCodec((NEW,), 3600, 600)
    session = codec.start("alice", "fp", NOW)
    assert tokens("logout").check(codec.dump(session), session.id) is False


def freeze_signer_clock(monkeypatch: pytest.MonkeyPatch, now: int) -> None:
    # itsdangerous reads the time itself; the token class takes no clock.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now)


def test_token_expires_after_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    freeze_signer_clock(monkeypatch, NOW)
    token = tokens().issue("nonce-1")

    freeze_signer_clock(monkeypatch, NOW + TOKEN_MAX_AGE)
    assert tokens().check(token, "nonce-1") is True

    freeze_signer_clock(monkeypatch, NOW + TOKEN_MAX_AGE + 1)
    assert tokens().check(token, "nonce-1") is False


def test_token_from_the_future_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    freeze_signer_clock(monkeypatch, NOW + 3600)
    token = tokens().issue("nonce-1")

    freeze_signer_clock(monkeypatch, NOW)
    assert tokens().check(token, "nonce-1") is False


_BINDINGS = st.text(min_size=1, max_size=80)


@given(_BINDINGS, _BINDINGS)
@example("nonce-1", "nonce-1")
@example("nonce-1", "nonce-é")
@example("Ã©", "Ã©")
def test_token_checks_exactly_for_its_binding(issued: str, presented: str) -> None:
    """Any text may arrive as a binding (the login nonce comes from a cookie
    the client controls); the check answers, it never raises."""
    token = tokens().issue(issued)
    assert tokens().check(token, presented) is (issued == presented)


def test_nonces_are_random_and_long() -> None:
    nonces = {new_nonce() for _ in range(50)}

    assert len(nonces) == 50
    assert all(len(nonce) >= 32 for nonce in nonces)
