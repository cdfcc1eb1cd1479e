"""Counting what a WSGI response sends, without getting in the server's way.

:func:`observe` calls an application and reports its status and body size
once the server has closed the body.  The access trail and the access log of
``static-gate serve`` both use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


@dataclass(frozen=True)
class Sent:
    """What one response sent, as :func:`observe` reports it."""

    #: The status code; ``None`` when the application started no response.
    status: int | None
    #: Body bytes handed to the server; for a body passed on as the server's
    #: file wrapper, the announced ``Content-Length`` (``None`` without one).
    size: int | None


def observe(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    report: Callable[[Sent], None],
) -> Iterable[bytes]:
    """Call *app* and *report* what it sent, once the server closes the body.

    The body is counted as the server reads it.  A body that is the server's
    ``wsgi.file_wrapper`` is returned untouched instead, since wrapping it
    would stop the server from sending the file with ``sendfile``; it is
    reported at once, before it is sent, with its ``Content-Length``.
    """
    started = _Started(start_response)
    body = app(environ, started)
    file_wrapper = environ.get("wsgi.file_wrapper")
    # Some servers offer a function, not a class; their bodies are counted.
    if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
        report(Sent(started.status, started.length))
        return body

    return _Counted(body, started, report)


class _Started:
    """A ``start_response`` that notes the status and the announced length."""

    def __init__(self, start_response: StartResponse) -> None:
        self.start_response = start_response
        self.status: int | None = None
        self.length: int | None = None

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        code = status.split(" ", 1)[0]
        self.status = int(code) if code.isdigit() else None
        self.length = None
        for name, value in headers:
            if name.lower() == "content-length" and value.isdigit():
                self.length = int(value)

        return self.start_response(status, headers, exc_info)


class _Counted:
    """A response body that counts its bytes and reports when it is closed."""

    def __init__(
        self, body: Iterable[bytes], started: _Started, report: Callable[[Sent], None]
    ) -> None:
        self.body = body
        self.started = started
        self.report = report
        self.size = 0
        self.reported = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            if not self.reported:
                self.reported = True
                self.report(Sent(self.started.status, self.size))
