"""One request as the gate sees it, and the pure helpers that read it.

:class:`Visit` carries what the gate has learnt about a request once it has
checked it: the canonical path, the client, the cookies, the session or
share link.  The functions read parts of a WSGI environ; none of them has
side effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .credentials import Account
    from .rules import Decision
    from .session import Session
    from .stores import ShareRecord


@dataclass
class Visit:
    """What the gate knows about one request once it has checked it."""

    environ: WSGIEnvironment
    path: str
    #: The mount point, percent-encoded, without a trailing slash.
    base: str
    client: str
    secure: bool
    cookie_name: str
    cookies: dict[str, str]
    session: Session | None = None
    account: Account | None = None
    #: Set when the cookie must be re-issued or deleted with this response.
    cookie_update: str | None = None
    #: Set when a session cookie could not be checked against the store.
    store_failed: bool = False
    #: ``X-Original-URI`` as sent, for the auth endpoint only.
    original_uri: str | None = None
    #: A validly signed session that the store could not confirm: sign-out
    #: must still be able to end it.
    unconfirmed: Session | None = None
    #: The live share link whose cookie covers this path.
    share: ShareRecord | None = None
    #: The account that made :attr:`share`, as it is now; ``None`` for a
    #: link made at the shell or by a user who was removed.
    share_creator: Account | None = None
    #: Why a share cookie that covers this path was not honoured:
    #: ``"store"`` (out of reach) or ``"gone"`` (expired or revoked).
    share_problem: str | None = None
    #: The path of the link whose cookie must be deleted, when it is gone.
    share_scope: str | None = None
    #: The decision behind a content answer; ``None`` for the gate's pages.
    decision: Decision | None = None

    @property
    def user(self) -> str | None:
        return self.account.name if self.account else None

    @property
    def cookie_path(self) -> str:
        return self.base + "/"


def is_navigation(environ: WSGIEnvironment) -> bool:
    """Tell whether the request is a browser loading a page, not an asset.

    Browsers say so in ``Sec-Fetch-Mode`` and ``Sec-Fetch-Dest`` (Fetch
    Metadata); for clients that send neither, a GET that accepts HTML counts.
    """
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode is not None:
        return bool(
            mode == "navigate"
            and environ.get("HTTP_SEC_FETCH_DEST", "document") == "document"
        )

    return environ.get("REQUEST_METHOD") == "GET" and "text/html" in environ.get(
        "HTTP_ACCEPT", ""
    )


def read_cookies(environ: WSGIEnvironment, base_name: str) -> dict[str, str]:
    """The gate's own cookies of the request, by name.

    Only cookies whose name contains *base_name* (``[session]
    cookie_name``, which every cookie of the gate contains after a
    ``__Host-`` or ``__Secure-`` prefix) are kept; the others belong to the
    site and are none of the gate's business.  The first of a repeated name
    wins, as in werkzeug's parser.
    """
    header = environ.get("HTTP_COOKIE", "")
    if base_name not in header:
        return {}

    found: dict[str, str] = {}
    for pair in header.split(";"):
        name, _, value = pair.partition("=")
        name = name.strip()
        if base_name in name and name not in found:
            found[name] = _unquote(value.strip())

    return found


def _unquote(value: str) -> str:
    # The gate never quotes its values (they hold no characters that need
    # it); a quoted value is unwrapped all the same, as RFC 6265 allows.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def decode_wsgi(value: str) -> str:
    """Turn a WSGI Latin-1 string into text, replacing bytes that are not UTF-8."""
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


def session_cookie_name(name: str, secure: bool, base: str) -> str:
    # The __Host- prefix needs Secure, Path=/ and no Domain (RFC 6265bis 4.1.3);
    # __Secure- still stops an http page from overwriting the cookie.
    if secure and not base:
        return "__Host-" + name

    if secure:
        return "__Secure-" + name

    return name
