"""Share links: tokens, what a link covers, the cookie, and checks on new links."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from werkzeug.http import dump_cookie, parse_cookie

from static_gate.credentials import Account
from static_gate.files import StaticFolder
from static_gate.keys import SecretKey
from static_gate.rules import ALLOW, FORBID, LOGIN, Rule, RuleSet
from static_gate.session import make_signer
from static_gate.shares import (
    MAX_NOTE_LENGTH,
    SHARE_COOKIE_LIFETIME,
    InvalidShare,
    check_note,
    check_share_path,
    check_share_target,
    check_uses,
    covers,
    decide_share,
    dump_share_cookie,
    format_duration,
    is_share_id,
    is_shell_share,
    load_share_cookie,
    make_share,
    make_token,
    new_share_id,
    parse_expires,
    parse_uses,
    read_token,
    share_cookie_name,
    share_cookie_path,
    share_cookie_until,
    share_url,
    shell_creator,
)
from static_gate.stores import ShareRecord

KEYS = [SecretKey(b"k" * 48)]
OTHER_KEYS = [SecretKey(b"o" * 48)]
T = 1_800_000_000.0
DAY = 86400
SHARE_ID = "AAAAAAAAAAAAAAAAAAAAAA"


def share(
    path: str = "/reports/", created_by: str = "@root", **fields: int
) -> ShareRecord:
    values = {"created": int(T), "expires": int(T) + DAY, "uses_left": None}
    values.update(fields)
    return ShareRecord(SHARE_ID, path, created_by, **values)  # type: ignore[arg-type]


# -- ids and tokens -----------------------------------------------------------


def test_new_share_ids_are_random_and_url_safe() -> None:
    ids = {new_share_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(is_share_id(share_id) for share_id in ids)


@pytest.mark.parametrize(
    "value", [None, "", "short", SHARE_ID + "A", "A" * 21 + "=", "A" * 21 + "/"]
)
def test_is_share_id_refuses_other_shapes(value: str | None) -> None:
    assert not is_share_id(value)


def test_token_carries_its_id() -> None:
    share_id = new_share_id()

    token = make_token(KEYS, share_id)

    assert read_token(KEYS, token) == share_id
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token), "the token is URL-safe"


def test_token_made_with_an_older_key_still_reads() -> None:
    """After a key rotation links keep working while the old key is listed."""
    token = make_token(OTHER_KEYS, SHARE_ID)

    assert read_token([*KEYS, *OTHER_KEYS], token) == SHARE_ID
    assert read_token(KEYS, token) is None


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


@pytest.mark.parametrize("index", [0, 10, 21, 23, 40, -1])
def test_tampered_token_is_refused(index: int) -> None:
    token = make_token(KEYS, SHARE_ID)

    assert read_token(KEYS, _flip(token, index)) is None


def test_token_signed_with_another_salt_is_refused() -> None:
    """A value signed for the session, or a share cookie, is no link."""
    session_signed = make_signer(KEYS, "static-gate.session").sign(SHARE_ID).decode()
    cookie = dump_share_cookie(KEYS, SHARE_ID, "/reports/", int(T) + 60)

    assert read_token(KEYS, session_signed) is None
    assert read_token(KEYS, cookie) is None


def test_token_of_a_value_that_is_no_id_is_refused() -> None:
    signed = make_signer(KEYS, "static-gate.share").sign("../../etc").decode()

    assert read_token(KEYS, signed) is None


@pytest.mark.parametrize("token", [None, "", "x" * 500, "é" * 30, "no-dot"])
def test_malformed_token_is_refused(token: str | None) -> None:
    assert read_token(KEYS, token) is None


@pytest.mark.parametrize(
    ("base_url", "prefix", "expected"),
    [
        ("https://example.org", "/_gate/", "https://example.org/_gate/share/TOKEN"),
        ("https://example.org/", "/_gate/", "https://example.org/_gate/share/TOKEN"),
        ("https://example.org/r", "/_gate/", "https://example.org/r/_gate/share/TOKEN"),
        ("", "/_gate/", "/_gate/share/TOKEN"),
        (
            "https://example.org",
            "/my gate/",
            "https://example.org/my%20gate/share/TOKEN",
        ),
    ],
)
def test_share_url(base_url: str, prefix: str, expected: str) -> None:
    assert share_url(base_url, prefix, "TOKEN") == expected


# -- what a link covers -------------------------------------------------------


@pytest.mark.parametrize(
    ("share_path", "request_path", "expected"),
    [
        ("/a/x.html", "/a/x.html", True),
        ("/a/x.html", "/a/x.html/", False),
        ("/a/x.html", "/a/x.htm", False),
        ("/a/x.html", "/a/x.html.gz", False),
        ("/a/x.html", "/a/", False),
        ("/a/x.html", "/A/x.html", False),
        ("/a/", "/a/", True),
        ("/a/", "/a", True),
        ("/a/", "/a/x.html", True),
        ("/a/", "/a/b/c/d.csv", True),
        ("/a/", "/ab/x", False),
        ("/a/", "/ab", False),
        ("/a/", "/", False),
        ("/a/b/", "/a/", False),
        ("/a/b/", "/a/c/x", False),
        ("/a/b/", "/a/bc/x", False),
    ],
)
def test_covers(share_path: str, request_path: str, expected: bool) -> None:
    assert covers(share_path, request_path) is expected


RULES = RuleSet(
    [
        Rule("/reports/public/", allow="anyone"),
        Rule("/reports/closed/", allow="nobody"),
        Rule("/reports/staff/", allow="listed", groups=frozenset({"staff"})),
        Rule("/reports/carol.html", allow="listed", users=frozenset({"carol"})),
    ]
)
ALICE = Account("alice", "$argon2id$x", frozenset({"staff"}))
BOB = Account("bob", "$argon2id$y")


@pytest.mark.parametrize(
    ("created_by", "creator", "path", "outcome"),
    [
        # An administrator's link opens all it covers, except what is closed.
        ("@root", None, "/reports/a.html", ALLOW),
        ("@root", None, "/reports/staff/g.html", ALLOW),
        ("@root", None, "/reports/carol.html", ALLOW),
        ("@root", None, "/reports/closed/x.html", FORBID),
        ("@root", None, "/reports/public/x.html", ALLOW),
        # A user's link opens only what its creator may read now.
        ("alice", ALICE, "/reports/a.html", ALLOW),
        ("alice", ALICE, "/reports/staff/g.html", ALLOW),
        ("alice", ALICE, "/reports/carol.html", FORBID),
        ("alice", ALICE, "/reports/closed/x.html", FORBID),
        ("bob", BOB, "/reports/staff/g.html", FORBID),
        ("bob", BOB, "/reports/public/x.html", ALLOW),
        # A removed creator's links open nothing that needs a sign-in.
        ("alice", None, "/reports/a.html", FORBID),
        ("alice", BOB, "/reports/a.html", FORBID),
        ("alice", None, "/reports/public/x.html", ALLOW),
    ],
)
def test_decide_share(
    created_by: str, creator: Account | None, path: str, outcome: str
) -> None:
    decision = decide_share(RULES, share(created_by=created_by), path, creator)

    assert decision is not None
    assert decision.outcome == outcome


@pytest.mark.parametrize("path", ["/other.html", "/reportsx/a.html", "/", "/_gate/x"])
def test_decide_share_leaves_uncovered_paths_alone(path: str) -> None:
    assert decide_share(RULES, share(), path, None) is None


def test_decide_share_never_asks_for_a_sign_in() -> None:
    """Within a link the answer is allow or refuse, never the login page."""
    outcomes = {
        decision.outcome
        for path in ["/reports/a", "/reports/staff/x", "/reports/closed/y"]
        for creator in [ALICE, BOB, None]
        if (decision := decide_share(RULES, share(created_by="alice"), path, creator))
    }

    assert LOGIN not in outcomes


def test_shell_links_are_marked() -> None:
    assert is_shell_share(share(created_by=shell_creator("root")))
    assert not is_shell_share(share(created_by="alice"))
    assert shell_creator("ro\not") == "@root"


# -- the cookie that replaces the token ---------------------------------------


@pytest.mark.parametrize(
    "scope", ["/reports/", "/a/x.html", "/Berichte 2024/ü|x;y,z.html", "/a/'\"()/"]
)
def test_share_cookie_round_trip(scope: str) -> None:
    value = dump_share_cookie(KEYS, SHARE_ID, scope, int(T) + 3600)

    assert load_share_cookie(KEYS, value, T) == (SHARE_ID, scope)


def test_share_cookie_value_needs_no_quoting() -> None:
    value = dump_share_cookie(KEYS, SHARE_ID, "/Berichte 2024/ü;x.html", int(T) + 60)
    header = dump_cookie("static_gate_share", value, path="/a")

    assert f"static_gate_share={value};" in header
    assert parse_cookie(header.split(";")[0])["static_gate_share"] == value


def test_share_cookie_stops_at_its_time() -> None:
    until = int(T) + 3600
    value = dump_share_cookie(KEYS, SHARE_ID, "/reports/", until)

    assert load_share_cookie(KEYS, value, until - 1) == (SHARE_ID, "/reports/")
    assert load_share_cookie(KEYS, value, until) is None
    assert load_share_cookie(KEYS, value, until + DAY) is None


def test_share_cookie_lasting_too_long_is_refused() -> None:
    """A cookie made to outlast SHARE_COOKIE_LIFETIME was not made here."""
    until = int(T) + SHARE_COOKIE_LIFETIME + 3600
    value = dump_share_cookie(KEYS, SHARE_ID, "/reports/", until)

    assert load_share_cookie(KEYS, value, T) is None


def test_share_cookie_from_another_key_or_salt_is_refused() -> None:
    until = int(T) + 60
    other_key = dump_share_cookie(OTHER_KEYS, SHARE_ID, "/reports/", until)
    payload = f"1|{SHARE_ID}|{until}|L3JlcG9ydHMv"
    as_session = make_signer(KEYS, "static-gate.session").sign(payload).decode()
    as_token = make_signer(KEYS, "static-gate.share").sign(payload).decode()

    assert load_share_cookie(KEYS, other_key, T) is None
    assert load_share_cookie(KEYS, as_session, T) is None
    assert load_share_cookie(KEYS, as_token, T) is None
    assert load_share_cookie(KEYS, make_token(KEYS, SHARE_ID), T) is None


@pytest.mark.parametrize("index", [0, 5, 30, -3, -1])
def test_tampered_share_cookie_is_refused(index: int) -> None:
    value = dump_share_cookie(KEYS, SHARE_ID, "/reports/", int(T) + 60)

    assert load_share_cookie(KEYS, _flip(value, index), T) is None


@pytest.mark.parametrize(
    "payload",
    [
        f"2|{SHARE_ID}|1800000060|L3JlcG9ydHMv",
        "1|short|1800000060|L3JlcG9ydHMv",
        f"1|{SHARE_ID}|soon|L3JlcG9ydHMv",
        f"1|{SHARE_ID}|١٨٠٠٠٠٠٠٦٠|L3JlcG9ydHMv",
        f"1|{SHARE_ID}|1800000060",
        f"1|{SHARE_ID}|1800000060|L3JlcG9ydHMv|x",
        f"1|{SHARE_ID}|1800000060|/w",
    ],
)
def test_share_cookie_with_a_bad_payload_is_refused(payload: str) -> None:
    """Even correctly signed, only the exact format is accepted."""
    value = make_signer(KEYS, "static-gate.share-cookie").sign(payload).decode()

    assert load_share_cookie(KEYS, value, T) is None


@pytest.mark.parametrize("value", [None, "", "x" * 5000, "é"])
def test_malformed_share_cookie_is_refused(value: str | None) -> None:
    assert load_share_cookie(KEYS, value, T) is None


@pytest.mark.parametrize(
    ("expires", "until"),
    [
        (int(T) + 7 * DAY, int(T) + SHARE_COOKIE_LIFETIME),
        (int(T) + 3600, int(T) + 3600),
    ],
)
def test_share_cookie_lasts_twelve_hours_at_most(expires: int, until: int) -> None:
    assert SHARE_COOKIE_LIFETIME == 12 * 3600
    assert share_cookie_until(share(expires=expires), T + 0.7) == until


@pytest.mark.parametrize(
    ("base", "share_path", "expected"),
    [
        ("", "/reports/", "/reports"),
        ("", "/reports/a.html", "/reports/a.html"),
        ("/site", "/reports/", "/site/reports"),
        ("", "/Berichte 2024/ü.html", "/Berichte%202024/%C3%BC.html"),
        ("", "/", "/"),
    ],
)
def test_share_cookie_path_is_the_shared_path(
    base: str, share_path: str, expected: str
) -> None:
    assert share_cookie_path(base, share_path) == expected


def test_share_cookie_name() -> None:
    assert share_cookie_name("static_gate", False) == "static_gate_share"
    assert share_cookie_name("static_gate", True) == "__Secure-static_gate_share"


# -- checking a new link ------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/reports/", "/reports/a.html", "/Berichte 2024/ü.html", "/a|b/"]
)
def test_check_share_path_takes_canonical_paths(path: str) -> None:
    assert check_share_path(path, "/_gate/") == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("reports/a.html", "does not start with a slash"),
        ("/reports//a.html", "write '/reports/a.html'"),
        ("/reports/../a.html", "write '/a.html'"),
        ("/reports/./", "write '/reports/'"),
        ("/../etc/passwd", "climbs above the root"),
        ("/a\\b", "forbidden character"),
        ("/a%2e%2e/", "forbidden character"),
        ("/a\x00b", "forbidden character"),
        ("/a;x=1", "parameters"),
        ("/a./", "ends with a dot"),
        ("/", "whole site"),
        ("", "whole site"),
        ("/_gate/", "gate's own pages"),
        ("/_gate/login", "gate's own pages"),
        ("/_gate", "gate's own pages"),
        ("/\udcff", "not text"),
    ],
)
def test_check_share_path_refuses(path: str, message: str) -> None:
    with pytest.raises(InvalidShare, match=re.escape(message)):
        check_share_path(path, "/_gate/")


@pytest.fixture
def folder(site: Path, tmp_path: Path) -> StaticFolder:
    (site / "empty").mkdir()
    os.symlink(tmp_path / "outside.txt", site / "public" / "link.txt")
    return StaticFolder(site)


@pytest.mark.parametrize(
    "path", ["/report.html", "/staff/grades.html", "/staff/", "/empty/", "/nolist/"]
)
def test_check_share_target_finds_what_the_gate_serves(
    folder: StaticFolder, path: str
) -> None:
    assert check_share_target(folder, path) is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/staff", "is a folder; write '/staff/'"),
        ("/report.html/", "is a file; write '/report.html'"),
        ("/missing.html", "does not exist"),
        ("/missing/", "does not exist"),
        ("/.hidden/secret.txt", "does not exist"),
        ("/.hidden/", "does not exist"),
        ("/.htaccess", "does not exist"),
        ("/public/link.txt", "does not exist"),
    ],
)
def test_check_share_target_refuses(
    folder: StaticFolder, path: str, message: str
) -> None:
    with pytest.raises(InvalidShare, match=re.escape(message)):
        check_share_target(folder, path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 7 * DAY), ("12h", 43200), ("1d12h", 129600)]
)
def test_parse_expires(text: str, seconds: int) -> None:
    assert parse_expires(text, 30 * DAY) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seven days", 'such as "7d"'),
        ("0d", 'such as "7d"'),
        ("7", 'such as "7d"'),
        ("31d", "links may last 30d at most ([share] max_expires), got '31d'"),
    ],
)
def test_parse_expires_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidShare, match=re.escape(message)):
        parse_expires(text, 30 * DAY)


def test_check_uses() -> None:
    assert check_uses(None) is None
    assert check_uses(1) == 1
    for bad in (0, -3):
        with pytest.raises(InvalidShare, match="1 or more"):
            check_uses(bad)


@pytest.mark.parametrize(("text", "uses"), [("", None), ("  ", None), (" 3 ", 3)])
def test_parse_uses(text: str, uses: int | None) -> None:
    assert parse_uses(text) == uses


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "1 or more"),
        ("-1", "whole number"),
        ("2.5", "whole number"),
        ("٣", "whole number"),
        ("9" * 13, "whole number"),
    ],
)
def test_parse_uses_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidShare, match=message):
        parse_uses(text)


def test_check_note() -> None:
    assert check_note("  for the parents' evening ") == "for the parents' evening"
    assert check_note("x" * MAX_NOTE_LENGTH) == "x" * MAX_NOTE_LENGTH
    for bad in ("x" * (MAX_NOTE_LENGTH + 1), "two\nlines", "tab\there", "\x1b[31m"):
        with pytest.raises(InvalidShare, match="one line"):
            check_note(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30 * DAY, "30d"), (DAY + 12 * 3600, "1d12h"), (90, "1m30s"), (0, "0s")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_make_share() -> None:
    record = make_share("/reports/", "alice", T + 0.9, 7 * DAY, 3, "note")

    assert is_share_id(record.id)
    assert record.id != make_share("/reports/", "alice", T, DAY).id
    assert (record.path, record.created_by, record.uses_left, record.note) == (
        "/reports/",
        "alice",
        3,
        "note",
    )
    assert (record.created, record.expires) == (int(T), int(T) + 7 * DAY)
