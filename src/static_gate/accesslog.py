"""A one-line-per-request access log for ``static-gate serve``.

waitress writes no access log of its own.  Other servers (gunicorn, Apache)
have theirs, and can log the signed-in user from ``REMOTE_USER``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .counting import Sent, observe

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

access = logging.getLogger("static_gate.access")


class AccessLog:
    """Wrap *app* so that each request is logged once its response is sent.

    A file the server sends with its own file wrapper is logged with the
    length its headers announce, since counting it would slow it down.
    """

    def __init__(self, app: WSGIApplication, secret_prefix: str | None = None) -> None:
        """:param secret_prefix: paths under it end in a share link's token,
        which is logged as ``...`` instead."""
        self.app = app
        self.secret_prefix = secret_prefix

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if self.secret_prefix and path.startswith(self.secret_prefix):
            path = self.secret_prefix + "..."

        return observe(
            self.app, environ, start_response, lambda sent: _log(environ, path, sent)
        )


def _log(environ: WSGIEnvironment, path: str, sent: Sent) -> None:
    access.info(
        '%s %s "%s %r" %s %s',
        environ.get("REMOTE_ADDR", "-"),
        environ.get("REMOTE_USER", "-"),
        environ.get("REQUEST_METHOD", "-"),
        path,
        "-" if sent.status is None else sent.status,
        "-" if sent.size is None else sent.size,
    )
