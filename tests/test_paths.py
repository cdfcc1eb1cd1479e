"""Canonical request paths, safe redirect targets and small path helpers."""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from static_gate.paths import (
    MAX_PATH_BYTES,
    MAX_SEGMENT_BYTES,
    PathRejected,
    canonical_path,
    is_under,
    quote_path,
    safe_redirect_target,
)


def as_path_info(text: str) -> str:
    """Carry *text* the way WSGI does: its UTF-8 bytes as Latin-1 characters."""
    return text.encode("utf-8").decode("latin-1")


def is_control(character: str) -> bool:
    """C0 controls, DEL and C1 controls."""
    return unicodedata.category(character) == "Cc"


# canonical_path: accepted paths


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/..", "/"),
        ("/index.html", "/index.html"),
        ("///a//b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/../../c", "/c"),
        ("/a/", "/a/"),
        ("/a//", "/a/"),
        ("/a/.", "/a/"),
        ("/a/b/..", "/a/"),
        ("/a/b/../", "/a/"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a..b/..c", "/a..b/..c"),
        ("/my report.html", "/my report.html"),
        ("/a+b=c&d", "/a+b=c&d"),
        (as_path_info("/café/été.html"), "/café/été.html"),
        (as_path_info("/日本/"), "/日本/"),
    ],
)
def test_canonical_form(path_info: str, expected: str) -> None:
    assert canonical_path(path_info) == expected


def test_longest_segment_is_accepted() -> None:
    path = "/" + "a" * MAX_SEGMENT_BYTES
    assert canonical_path(path) == path


def test_longest_path_is_accepted() -> None:
    path = ("/" + "a" * (MAX_PATH_BYTES // 8 - 1)) * 8
    assert len(path) == MAX_PATH_BYTES
    assert canonical_path(path) == path


# canonical_path: hostile paths


@pytest.mark.parametrize(
    ("path_info", "status"),
    [
        pytest.param("/..", 400, id="dotdot-at-root"),
        pytest.param("/../etc/passwd", 400, id="dotdot-etc-passwd"),
        pytest.param("/a/../../b", 400, id="dotdot-above-root"),
        pytest.param("/a/../..", 400, id="dotdot-above-root-at-end"),
        pytest.param("/./../a", 400, id="dot-then-dotdot"),
        pytest.param("relative/path", 400, id="no-leading-slash"),
        pytest.param("a", 400, id="bare-name"),
        pytest.param("/a\x00b", 400, id="nul"),
        pytest.param("/a.html\x00.txt", 400, id="nul-extension-trick"),
        pytest.param("/a\x01", 400, id="control-01"),
        pytest.param("/a\tb", 400, id="tab"),
        pytest.param("/a\nb", 400, id="newline"),
        pytest.param("/a\rb", 400, id="carriage-return"),
        pytest.param("/a\x1f", 400, id="control-1f"),
        pytest.param("/a\x7f", 400, id="del"),
        pytest.param(as_path_info("/a\x85"), 400, id="c1-next-line"),
        pytest.param(as_path_info("/a\x9b"), 400, id="c1-csi"),
        pytest.param("/a\\b", 400, id="backslash"),
        pytest.param("/..\\etc\\passwd", 400, id="backslash-dotdot"),
        pytest.param("\\a", 400, id="leading-backslash"),
        pytest.param("/%2e%2e/etc", 400, id="double-encoded-dots"),
        pytest.param("/a%2fb", 400, id="double-encoded-slash"),
        pytest.param("/%5c", 400, id="double-encoded-backslash"),
        pytest.param("/%25", 400, id="double-encoded-percent"),
        pytest.param("/%", 400, id="lone-percent"),
        pytest.param("/a;jsessionid=1", 400, id="params"),
        pytest.param("/staff;/grades.html", 400, id="params-empty"),
        pytest.param("/..;/staff/", 400, id="params-after-dotdot"),
        pytest.param("/a.", 400, id="trailing-dot"),
        pytest.param("/staff./grades.html", 400, id="trailing-dot-folder"),
        pytest.param("/...", 400, id="three-dots"),
        pytest.param("/a ", 400, id="trailing-space"),
        pytest.param("/staff /grades.html", 400, id="trailing-space-folder"),
        pytest.param("/a/. ", 400, id="dot-space"),
        pytest.param("/\xff", 400, id="byte-ff"),
        pytest.param("/caf\xe9", 400, id="latin-1-e-acute"),
        pytest.param("/\xc3", 400, id="truncated-utf-8"),
        pytest.param("/\xc0\xaf", 400, id="overlong-slash"),
        pytest.param("/\xc0\xae\xc0\xae/", 400, id="overlong-dots"),
        pytest.param("/\xed\xa0\x80", 400, id="utf-8-surrogate"),
        pytest.param("/" + "a" * MAX_PATH_BYTES, 414, id="path-too-long"),
        pytest.param(("/" + "a" * 255) * 8 + "/", 414, id="path-one-byte-too-long"),
        pytest.param("/" + "a" * (MAX_SEGMENT_BYTES + 1), 414, id="segment-too-long"),
        pytest.param(as_path_info("/" + "é" * 128), 414, id="segment-bytes-too-long"),
    ],
)
def test_hostile_path_is_rejected(path_info: str, status: int) -> None:
    with pytest.raises(PathRejected) as caught:
        canonical_path(path_info)

    assert caught.value.status == status
    assert caught.value.reason


def test_path_rejected_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        canonical_path("/..")


# canonical_path: properties

# Pieces that make paths interesting: dots, encodings, separators, controls.
_PIECES = st.sampled_from(
    ["a", "b", "é", ".", "..", "...", "", "a.", "a ", ";x", "%2e", "%", "\\", "\x00"]
    + ["\t", "\x7f", "\xc2\x85", "\xff", "\xc3\xa9", "~", " a", ".a"]
)
_PATHS = st.one_of(
    st.text(),
    st.text().map(as_path_info),
    st.lists(_PIECES, max_size=10).map(lambda pieces: "/" + "/".join(pieces)),
)


@given(_PATHS)
@example("/a/./b/../")
@example("/\u0100")
def test_canonical_path_is_clean_and_stable(path_info: str) -> None:
    """Whatever comes in, what comes out is clean and canonical already."""
    try:
        result = canonical_path(path_info)
    except PathRejected as rejected:
        assert rejected.status in (400, 414)
        return

    assert result.startswith("/")
    assert "//" not in result
    segments = result.split("/")
    assert "." not in segments
    assert ".." not in segments
    assert not any(segment.endswith((".", " ")) for segment in segments if segment)
    assert not any(is_control(character) for character in result)
    assert not {"\\", "%", ";"} & set(result)
    assert canonical_path(as_path_info(result)) == result


@given(st.lists(st.sampled_from(["a", "b", ".", "..", ""]), max_size=12))
def test_dot_segments_never_lead_above_the_root(segments: list[str]) -> None:
    """A path is refused exactly when some ``..`` climbs above the root."""
    path_info = "/" + "/".join(segments)
    depth = 0
    climbs = False
    for segment in segments:
        if segment == "..":
            depth -= 1
            climbs = climbs or depth < 0
        elif segment not in ("", "."):
            depth += 1

    if climbs:
        with pytest.raises(PathRejected):
            canonical_path(path_info)
        return

    result = canonical_path(path_info)
    assert (result.rstrip("/") or "/") == posixpath.normpath(
        "/" + path_info.lstrip("/")
    )
    assert posixpath.normpath("/srv/site" + result).startswith("/srv/site")


# safe_redirect_target


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/reports/a.html?x=1#f",
        "/a%20b",
        "/staff/grades.html",
        "/search?q=a%2Fb",
        "/_gateway/x",
        "/a" * (MAX_PATH_BYTES // 2),
    ],
)
def test_safe_target_is_kept(target: str) -> None:
    assert safe_redirect_target(target, reserved_prefix="/_gate/") == target


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("//evil.example", id="protocol-relative"),
        pytest.param("///evil.example", id="three-slashes"),
        pytest.param("/\\evil.example", id="slash-backslash"),
        pytest.param("\\\\evil", id="two-backslashes"),
        pytest.param("https://evil.example", id="absolute-url"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("//user@evil", id="userinfo"),
        pytest.param("http:/evil", id="scheme-one-slash"),
        pytest.param("evil.example/x", id="relative"),
        pytest.param("/\t/evil", id="tab"),
        pytest.param("/\n/evil", id="newline"),
        pytest.param("/\r\n/evil", id="crlf"),
        pytest.param("/ /evil", id="raw-space"),
        pytest.param("/a\x00", id="nul"),
        pytest.param("/a\x7f", id="del"),
        pytest.param("/%2F%2Fevil.example", id="encoded-slashes"),
        pytest.param("/%2f%2fevil.example", id="encoded-slashes-lower"),
        pytest.param("%2F%2Fevil", id="encoded-leading-slashes"),
        pytest.param("/%5Cevil", id="encoded-backslash"),
        pytest.param("/%09/evil", id="encoded-tab"),
        pytest.param("/%0d%0aSet-Cookie:x", id="encoded-crlf"),
        pytest.param("/%00", id="encoded-nul"),
        pytest.param("/%ff", id="encoded-non-utf-8"),
        pytest.param("/%252F%252Fevil.example", id="double-encoded"),
        pytest.param("/%25252F%25252Fevil", id="triple-encoded"),
        pytest.param("/%2525252F%2525252Fevil", id="quadruple-encoded"),
        pytest.param("/%252525252Fx", id="too-deeply-encoded"),
        pytest.param("/café", id="non-ascii"),
        pytest.param("/\u2028/evil", id="line-separator"),
        pytest.param("/" + "a" * MAX_PATH_BYTES, id="over-long"),
        pytest.param("/_gate/logout", id="reserved"),
        pytest.param("/_gate/login?next=/x", id="reserved-with-query"),
        pytest.param("/_gate", id="reserved-folder-no-slash"),
        pytest.param("/%5Fgate/logout", id="reserved-encoded"),
        pytest.param("/%255Fgate/logout", id="reserved-double-encoded"),
        pytest.param("/./_gate/logout", id="reserved-after-dot"),
        pytest.param("/x/../_gate/logout", id="reserved-after-dotdot"),
    ],
)
def test_hostile_target_falls_back_to_root(target: str | None) -> None:
    assert safe_redirect_target(target, reserved_prefix="/_gate/") == "/"


def test_reserved_prefix_is_only_refused_when_given() -> None:
    assert safe_redirect_target("/_gate/logout") == "/_gate/logout"


# Pieces from which encoded, doubled and mixed attacks can be assembled.
_TARGET_PIECES = st.sampled_from(
    ["/", "\\", "%", "25", "2F", "2f", "5C", "09", "0A", "20", "2E", "5F"]
    + [":", "@", "?", "#", ".", "evil", "http", "_gate", "a", "\t", " "]
)
_TARGETS = st.one_of(
    st.text(),
    st.lists(_TARGET_PIECES, max_size=14).map("".join),
    st.lists(_TARGET_PIECES, max_size=14).map(lambda pieces: "/" + "".join(pieces)),
)


@given(_TARGETS)
@example("/%2F%2Fevil")
@example("/%252F%252Fevil")
@example("/%255Fgate/x")
def test_safe_target_never_leaves_the_site(value: str) -> None:
    """No decoding of a returned target, however often repeated, leaves the
    site, holds a backslash or a control character, or enters the gate."""
    result = safe_redirect_target(value, reserved_prefix="/_gate/")
    if result == "/":
        return

    assert result == value
    assert result.isascii()
    assert len(result) <= MAX_PATH_BYTES
    current = result
    while True:
        assert current.startswith("/")
        assert not current.startswith("//")
        assert "\\" not in current
        assert not any(is_control(character) for character in current)
        parts = urlsplit(current)
        assert not parts.scheme
        assert not parts.netloc
        assert not is_under(parts.path, "/_gate/")

        decoded = unquote(current)
        if decoded == current:
            break

        current = decoded


# quote_path and is_under


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/reports/a.html", "/reports/a.html"),
        ("/my report.html", "/my%20report.html"),
        ("/café", "/caf%C3%A9"),
        ("/a?b#c", "/a%3Fb%23c"),
        ("/100%", "/100%25"),
        ("/a\\b", "/a%5Cb"),
        ("/~user/a+b=c&d;e:f@g!$'()*,", "/~user/a+b=c&d;e:f@g!$'()*,"),
    ],
)
def test_quote_path(path: str, expected: str) -> None:
    assert quote_path(path) == expected
    assert unquote(quote_path(path)) == path


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/staff/", "/staff/", True),
        ("/staff", "/staff/", True),
        ("/staff/grades.html", "/staff/", True),
        ("/staff/a/b/c", "/staff/", True),
        ("/staffroom/x", "/staff/", False),
        ("/staffroom", "/staff/", False),
        ("/sta", "/staff/", False),
        ("/", "/staff/", False),
        ("/other/staff/", "/staff/", False),
        ("/anything", "/", True),
    ],
)
def test_is_under(path: str, prefix: str, expected: bool) -> None:
    assert is_under(path, prefix) is expected
