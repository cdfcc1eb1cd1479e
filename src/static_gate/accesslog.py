"""A one-line-per-request access log for ``static-gate serve``.

waitress writes no access log of its own.  Other servers (gunicorn, Apache)
have theirs, and can log the signed-in user from ``REMOTE_USER``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

access = logging.getLogger("static_gate.access")


class AccessLog:
    """Wrap *app* so that each request is logged once its response is sent."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        status = ["-", "-"]

        def recording_start_response(
            status_line: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            status[0] = status_line.split(" ", 1)[0]
            for name, value in headers:
                if name.lower() == "content-length":
                    status[1] = value
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, recording_start_response)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if file_wrapper is not None and isinstance(body, file_wrapper):
            # Wrapping the server's own file object would stop it from
            # sending the file efficiently; log the announced length instead.
            _log(environ, status[0], status[1])
            return body  # type: ignore[no-any-return]

        return _Logged(body, environ, status)


class _Logged:
    """The response body, logging the request when the server closes it."""

    def __init__(
        self, body: Iterable[bytes], environ: WSGIEnvironment, status: list[str]
    ) -> None:
        self.body = body
        self.environ = environ
        self.status = status
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            _log(self.environ, self.status[0], str(self.sent))


def _log(environ: WSGIEnvironment, status: str, size: str) -> None:
    access.info(
        '%s %s "%s %r" %s %s',
        environ.get("REMOTE_ADDR", "-"),
        environ.get("REMOTE_USER", "-"),
        environ.get("REQUEST_METHOD", "-"),
        environ.get("PATH_INFO", ""),
        status,
        size,
    )
