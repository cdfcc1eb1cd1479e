"""Request paths in one canonical form, and safe targets for redirects.

Every decision and every file lookup works on the string that
:func:`canonical_path` returns, never on the raw URL, so the rule that is
checked and the file that is served cannot disagree.  These functions are
pure: text in, text (or :class:`PathRejected`) out.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import quote, unquote, urlsplit

#: Longest request path accepted, in bytes after percent-decoding.
MAX_PATH_BYTES = 2048

#: Longest single path segment, in bytes: what common file systems allow.
MAX_SEGMENT_BYTES = 255

# C0 and C1 control characters, DEL, backslash and percent.  A percent sign
# left after the server's decoding means the client encoded something twice;
# a wrapped application that decodes again would see another path.
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\\%]")

# Characters kept as they are when a canonical path is put back in a URL.
_SAFE_IN_URL = "/!$&'()*+,;=:@-._~"


class PathRejected(ValueError):
    """A request path that no file or rule may ever be looked up with.

    :param status: the HTTP status to answer with (400 or 414).
    :param reason: a short reason for the log, never shown to the visitor.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def canonical_path(path_info: str) -> str:
    """Return the canonical form of a WSGI ``PATH_INFO`` value.

    The canonical form is decoded text that starts with ``/``, with no empty,
    ``.`` or ``..`` segments.  A result that differs from the decoded input
    means the request should be redirected to the canonical form.

    :param path_info: ``PATH_INFO`` as WSGI gives it: the server has already
        percent-decoded it, and its bytes are carried as Latin-1 characters.
    :raises PathRejected: not UTF-8, too long, control characters, NUL,
        backslashes, a percent sign, ``;`` parameters, a segment ending with
        a dot or a space, or ``..`` climbing above the root.
    """
    try:
        raw = path_info.encode("latin-1")
    except UnicodeEncodeError:
        # WSGI carries bytes as Latin-1 characters; nothing else can occur.
        raise PathRejected(400, "path is not a WSGI byte string") from None

    if len(raw) > MAX_PATH_BYTES:
        raise PathRejected(414, "path too long")

    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathRejected(400, "path is not UTF-8") from None

    if _FORBIDDEN_CHARACTERS.search(path):
        raise PathRejected(400, "forbidden character in path")

    if not path:
        return "/"

    if not path.startswith("/"):
        raise PathRejected(400, "path does not start with a slash")

    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue

        if segment == "..":
            if not segments:
                raise PathRejected(400, "path climbs above the root")

            segments.pop()
            continue

        _check_segment(segment)
        segments.append(segment)

    canonical = "/" + "/".join(segments)
    if segments and path.endswith(("/", "/.", "/..")):
        canonical += "/"

    return canonical


def _check_segment(segment: str) -> None:
    if ";" in segment:
        # Some servers and frameworks drop ";params" and some keep them.
        raise PathRejected(400, "path parameters are not accepted")

    if segment.endswith((".", " ")):
        # Windows file systems ignore trailing dots and spaces.
        raise PathRejected(400, "segment ends with a dot or a space")

    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise PathRejected(414, "path segment too long")


def quote_path(path: str) -> str:
    """Percent-encode a canonical path for a ``Location`` header or a link."""
    return quote(path, safe=_SAFE_IN_URL)


def with_query(location: str, query: str) -> str:
    """Append a raw query string to *location*, escaping what a header forbids."""
    if not query:
        return location

    # "%" stays as it is, so escapes the client already made are kept.
    return location + "?" + quote(query, safe=_SAFE_IN_URL + "%?")


def is_under(path: str, prefix: str) -> bool:
    """Tell whether *path* is the folder *prefix* (ending in ``/``) or in it."""
    return path.startswith(prefix) or path == prefix[:-1]


# Encoded forms are decoded this many times before giving up; an attacker
# gains nothing from deeper nesting because a still-encoded value is refused.
_DECODE_ROUNDS = 4

# A space may appear once decoded (a file named "a b.html"), never raw.
_UNSAFE_IN_TARGET = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def safe_redirect_target(value: str | None, reserved_prefix: str = "") -> str:
    """Return *value* if it is a same-site path to follow after login, else ``/``.

    A safe target starts with exactly one ``/``, holds only printable ASCII,
    and no decoding of it, however often repeated, yields a backslash, a
    control character, whitespace, a scheme or a network location.  Targets
    inside *reserved_prefix* (the gate's own pages) are refused as well, so
    a login never leads straight to a logout.

    :param value: the ``next`` parameter as the client sent it.
    """
    if not value or len(value) > MAX_PATH_BYTES or not value.isascii():
        return "/"

    if " " in value:
        return "/"

    current = value
    for _ in range(_DECODE_ROUNDS):
        if not _is_plain_local_path(current):
            return "/"

        try:
            decoded = unquote(current, errors="strict")
        except UnicodeDecodeError:
            return "/"

        if decoded == current:
            break

        current = decoded
    else:
        return "/"

    if reserved_prefix:
        # The browser resolves dot segments before it asks, so must we.
        resolved = posixpath.normpath(urlsplit(current).path)
        if is_under(resolved + "/", reserved_prefix):
            return "/"

    return value


def _is_plain_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False

    if _UNSAFE_IN_TARGET.search(value):
        return False

    try:
        parts = urlsplit(value)
    except ValueError:
        return False

    return not parts.scheme and not parts.netloc
