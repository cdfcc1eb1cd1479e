"""The access log of ``static-gate serve``: one line per request."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

from static_gate.accesslog import AccessLog


def serve(app: Callable[..., Iterable[bytes]], **environ: Any) -> bytes:
    """Run *app* as a server does: read the body, then close it."""
    env = EnvironBuilder(path="/reports/a.html").get_environ()
    env.update(REMOTE_ADDR="203.0.113.7", **environ)
    body = AccessLog(app)(env, lambda status, headers, exc_info=None: None)
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


def test_a_request_is_logged_with_the_bytes_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        environ["REMOTE_USER"] = "alice"
        start("200 OK", [("Content-Length", "5")])
        return [b"he", b"llo"]

    caplog.set_level(logging.INFO, logger="static_gate.access")

    serve(app)

    assert caplog.messages == ["203.0.113.7 alice \"GET '/reports/a.html'\" 200 5"]


def test_a_file_wrapper_is_logged_with_its_announced_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        start("200 OK", [("Content-Length", "4")])
        return FileWrapper(io.BytesIO(b"data"))

    caplog.set_level(logging.INFO, logger="static_gate.access")

    assert serve(app, **{"wsgi.file_wrapper": FileWrapper}) == b"data"
    assert caplog.messages == ["203.0.113.7 - \"GET '/reports/a.html'\" 200 4"]
