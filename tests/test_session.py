"""The signed session cookie: signing, key rotation, expiry and bad payloads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from static_gate.csrf import CsrfTokens
from static_gate.keys import SecretKey
from static_gate.session import (
    EXPIRED,
    IDLE,
    MISSING,
    TAMPERED,
    Session,
    SessionCodec,
    make_signer,
)

NEW = SecretKey(b"n" * 40)
OLD = SecretKey(b"o" * 40)
OTHER = SecretKey(b"x" * 40)

NOW = 1_800_000_000
LIFETIME = 8 * 3600
IDLE_TIMEOUT = 30 * 60


def codec(*keys: SecretKey) -> SessionCodec:
    return SessionCodec(keys or (NEW,), LIFETIME, IDLE_TIMEOUT)


def sign(payload: str, *keys: SecretKey) -> str:
    """Sign *payload* exactly as the session codec would."""
    signer = make_signer(keys or (NEW,), "static-gate.session")
    return signer.sign(payload).decode()


def test_round_trip() -> None:
    session = codec().start("alice", "fp-1", NOW)

    check = codec().load(codec().dump(session), NOW)

    assert check.session == session
    assert check.problem is None


def test_start_fills_in_the_session() -> None:
    session = codec().start("alice", "fp-1", NOW + 0.9)

    assert session.user == "alice"
    assert session.fingerprint == "fp-1"
    assert session.issued_at == NOW
    assert session.last_seen == NOW
    assert len(session.id) >= 24


def test_each_start_gives_a_new_id() -> None:
    ids = {codec().start("alice", "fp", NOW).id for _ in range(50)}
    assert len(ids) == 50


def test_signature_does_not_fit_another_payload() -> None:
    """Bob's payload under Alice's signature does not make Bob signed in."""
    alice = codec().dump(codec().start("alice", "fp", NOW))
    bob = codec(OTHER).dump(codec(OTHER).start("bob", "fp", NOW))
    spliced = bob.rsplit(".", 1)[0] + "." + alice.rsplit(".", 1)[1]

    assert codec().load(spliced, NOW).problem == TAMPERED


@pytest.mark.parametrize("value", [None, ""])
def test_missing_cookie(value: str | None) -> None:
    check = codec().load(value, NOW)
    assert check.session is None
    assert check.problem == MISSING


def flip(value: str, index: int) -> str:
    replacement = "A" if value[index] != "A" else "B"
    return value[:index] + replacement + value[index + 1 :]


@pytest.mark.parametrize("where", [0, 5, 20, -10, -2])
def test_tampered_cookie_is_refused(where: int) -> None:
    value = codec().dump(codec().start("alice", "fp", NOW))
    index = where % len(value)

    check = codec().load(flip(value, index), NOW)

    assert check.session is None
    assert check.problem == TAMPERED


@pytest.mark.parametrize(
    "value",
    ["garbage", ".", "a.b", "W10.", "\x00", "é.é", "x" * 5000],
)
def test_garbage_cookie_is_refused(value: str) -> None:
    assert codec().load(value, NOW).problem == TAMPERED


@given(st.text(min_size=1))
def test_any_cookie_text_is_refused_quietly(value: str) -> None:
    check = codec().load(value, NOW)
    assert check.session is None
    assert check.problem == TAMPERED


def test_cookie_signed_with_another_key_is_refused() -> None:
    value = codec(OTHER).dump(codec(OTHER).start("alice", "fp", NOW))
    assert codec(NEW).load(value, NOW).problem == TAMPERED


def test_csrf_token_is_not_a_session() -> None:
    """Values signed for another purpose, with the same key, do not verify."""
    token = CsrfTokens((NEW,), "login").issue("nonce")
    assert codec().load(token, NOW).problem == TAMPERED


def test_old_key_still_verifies_after_rotation() -> None:
    session = codec(OLD).start("alice", "fp", NOW)
    value = codec(OLD).dump(session)

    assert codec(NEW, OLD).load(value, NOW).session == session


def test_new_cookies_are_signed_with_the_first_key() -> None:
    session = codec(NEW, OLD).start("alice", "fp", NOW)
    value = codec(NEW, OLD).dump(session)

    assert codec(NEW).load(value, NOW).session == session
    assert codec(OLD).load(value, NOW).problem == TAMPERED


def test_removed_key_no_longer_verifies() -> None:
    value = codec(OLD).dump(codec(OLD).start("alice", "fp", NOW))
    assert codec(NEW).load(value, NOW).problem == TAMPERED


# Expiry, checked at the exact boundaries


def test_lifetime_boundary() -> None:
    """A session ends after its lifetime, however recently it was used."""
    session = codec().start("alice", "fp", NOW)
    session = codec().touch(session, NOW + LIFETIME - 10)
    value = codec().dump(session)

    assert codec().load(value, NOW + LIFETIME - 1).session == session
    assert codec().load(value, NOW + LIFETIME).problem == EXPIRED
    assert codec().load(value, NOW + LIFETIME).session is None


def test_idle_boundary() -> None:
    session = codec().start("alice", "fp", NOW)
    value = codec().dump(session)

    assert codec().load(value, NOW + IDLE_TIMEOUT - 1).session == session
    assert codec().load(value, NOW + IDLE_TIMEOUT).problem == IDLE
    assert codec().load(value, NOW + IDLE_TIMEOUT).session is None


def test_idle_counts_from_last_seen() -> None:
    session = codec().start("alice", "fp", NOW)
    touched = codec().touch(session, NOW + 1000)
    value = codec().dump(touched)

    assert codec().load(value, NOW + 1000 + IDLE_TIMEOUT - 1).session == touched
    assert codec().load(value, NOW + 1000 + IDLE_TIMEOUT).problem == IDLE


def test_lifetime_wins_over_idle() -> None:
    short = SessionCodec((NEW,), lifetime=600, idle_timeout=600)
    value = short.dump(short.start("alice", "fp", NOW))
    assert short.load(value, NOW + 600).problem == EXPIRED


def test_issued_in_the_future_is_refused() -> None:
    """A minute of clock skew between workers is tolerated, no more."""
    value = codec().dump(codec().start("alice", "fp", NOW))

    assert codec().load(value, NOW - 60).session is not None
    assert codec().load(value, NOW - 61).problem == TAMPERED


def test_session_carries_its_own_times() -> None:
    """The codec's settings decide, not anything the client sent."""
    value = codec().dump(codec().start("alice", "fp", NOW))
    strict = SessionCodec((NEW,), lifetime=60, idle_timeout=60)
    assert strict.load(value, NOW + 60).problem == EXPIRED


# Payloads that verify but are not sessions


GOOD = ["1", "session-id", "alice", str(NOW), str(NOW), "fp"]


def altered(index: int, value: str) -> str:
    payload = list(GOOD)
    payload[index] = value
    return "|".join(payload)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("|".join(GOOD[:5]), id="too-short"),
        pytest.param("|".join([*GOOD, "extra"]), id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("alice", id="one-field"),
        pytest.param(altered(0, "2"), id="unknown-format"),
        pytest.param(altered(1, ""), id="id-empty"),
        pytest.param(altered(2, ""), id="user-empty"),
        pytest.param(altered(5, ""), id="fingerprint-empty"),
        pytest.param(altered(3, "x"), id="issued-not-a-number"),
        pytest.param(altered(3, f"{NOW}.5"), id="issued-as-float"),
        pytest.param(altered(3, f"-{NOW}"), id="issued-negative"),
        pytest.param(altered(3, f" {NOW}"), id="issued-with-space"),
        pytest.param(altered(3, "True"), id="issued-as-bool"),
        pytest.param(altered(3, "١٢٣"), id="issued-in-other-digits"),
        pytest.param(altered(3, "9" * 40), id="issued-huge"),
        pytest.param(altered(4, ""), id="last-seen-empty"),
        pytest.param(altered(4, str(NOW - 1)), id="last-seen-before-issue"),
    ],
)
def test_malformed_payload_is_refused(payload: str) -> None:
    assert codec().load(sign(payload), NOW).problem == TAMPERED


def test_well_formed_payload_is_accepted() -> None:
    """The malformed cases above differ from this one in a single place."""
    check = codec().load(sign("|".join(GOOD)), NOW)
    assert check.session == Session("session-id", "alice", NOW, NOW, "fp")


def test_non_ascii_cookie_is_refused() -> None:
    assert codec().load("1|é|alice.sig", NOW).problem == TAMPERED


# Refreshing last_seen


def test_refresh_after_is_a_tenth_of_idle_capped_at_a_minute() -> None:
    assert SessionCodec((NEW,), 3600, 1800).refresh_after == 60
    assert SessionCodec((NEW,), 3600, 300).refresh_after == 30
    assert SessionCodec((NEW,), 3600, 5).refresh_after == 1


def test_needs_refresh_boundary() -> None:
    session = codec().start("alice", "fp", NOW)
    refresh_after = codec().refresh_after

    assert not codec().needs_refresh(session, NOW)
    assert not codec().needs_refresh(session, NOW + refresh_after - 1)
    assert codec().needs_refresh(session, NOW + refresh_after)


def test_touch_moves_only_last_seen() -> None:
    session = codec().start("alice", "fp", NOW)

    touched = codec().touch(session, NOW + 100.7)

    assert touched.last_seen == NOW + 100
    assert touched.issued_at == session.issued_at
    assert touched.id == session.id
    assert touched.user == session.user
    assert touched.fingerprint == session.fingerprint
    assert session.last_seen == NOW
    assert not codec().needs_refresh(touched, NOW + 100)
