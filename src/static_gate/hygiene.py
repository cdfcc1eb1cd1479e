"""Request hygiene: limits, and headers that no client may use against us.

Two kinds of header are removed from every request before anything reads it.
Headers that claim an identity (``Remote-User``, ``X-Forwarded-User`` and the
like) would let a client pose as a signed-in user to the wrapped
application.  Headers that rewrite the path (``X-Original-URL`` and the like)
would let the application serve another path than the one the rules
checked.  Removal works on environ keys, so every spelling that a server
folds into the same key (``X-Remote-User``, ``x_remote_user``, ...) goes too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


#: Longest ``Cookie`` header accepted, in bytes; past it: 431.
MAX_COOKIE_BYTES = 8192

#: Longest query string accepted, in bytes; past it: 414.
MAX_QUERY_BYTES = 4096

#: Largest login form accepted, in bytes; past it: 413.
MAX_FORM_BYTES = 4096

IDENTITY_KEYS = (
    "REMOTE_USER",
    "HTTP_REMOTE_USER",
    "HTTP_X_REMOTE_USER",
    "HTTP_X_REMOTE_GROUP",
    "HTTP_X_REMOTE_GROUPS",
    "HTTP_X_USER",
    "HTTP_X_USERNAME",
    "HTTP_X_AUTH_USER",
    "HTTP_X_AUTHENTICATED_USER",
    "HTTP_X_AUTHENTICATED_GROUPS",
    "HTTP_X_FORWARDED_USER",
    "HTTP_X_FORWARDED_EMAIL",
    "HTTP_X_FORWARDED_GROUPS",
    "HTTP_X_FORWARDED_PREFERRED_USERNAME",
    "HTTP_X_AUTH_REQUEST_USER",
    "HTTP_X_AUTH_REQUEST_EMAIL",
    "HTTP_X_AUTH_REQUEST_GROUPS",
    "HTTP_X_AUTH_REQUEST_PREFERRED_USERNAME",
    "HTTP_X_WEBAUTH_USER",
    "HTTP_X_PROXY_USER",
    "HTTP_X_STATIC_GATE_USER",
    "HTTP_X_STATIC_GATE_GROUPS",
    "HTTP_AUTH_USER",
)

PATH_OVERRIDE_KEYS = (
    "HTTP_X_ORIGINAL_URL",
    "HTTP_X_ORIGINAL_URI",
    "HTTP_X_REWRITE_URL",
    "HTTP_X_FORWARDED_URI",
    "HTTP_X_FORWARDED_PATH",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_ENVOY_ORIGINAL_PATH",
    "HTTP_X_SCRIPT_NAME",
)

_REMOVED = IDENTITY_KEYS + PATH_OVERRIDE_KEYS


def scrub(environ: WSGIEnvironment) -> dict[str, str]:
    """Remove identity and path-rewriting headers from *environ* in place.

    Returns what was removed, for the one reader that may look at it: the
    auth endpoint, which takes ``X-Original-URI`` from a trusted proxy.
    """
    removed = {}
    for key in _REMOVED:
        if key in environ:
            removed[key] = environ.pop(key)

    return removed


def oversized_part(environ: WSGIEnvironment) -> int | None:
    """Return the status for a cookie or query string over its limit, or None."""
    if len(environ.get("HTTP_COOKIE", "")) > MAX_COOKIE_BYTES:
        return 431

    if len(environ.get("QUERY_STRING", "")) > MAX_QUERY_BYTES:
        return 414

    return None
