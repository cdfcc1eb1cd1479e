"""Counting what a response sends, without wrapping the server's file wrapper."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.wsgi import FileWrapper

from static_gate.counting import Sent, observe

Environ = dict[str, Any]


def app_with(
    body: Iterable[bytes], status: str = "200 OK", length: str | None = None
) -> Callable[..., Iterable[bytes]]:
    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [("Content-Type", "text/plain")]
        if length is not None:
            headers.append(("Content-Length", length))
        start_response(status, headers)
        return body

    return app


def start_response(
    status: str, headers: list[tuple[str, str]], exc_info: object = None
) -> Callable[[bytes], object]:
    return lambda data: None


def run(
    app: Callable[..., Iterable[bytes]], environ: Environ
) -> tuple[bytes, list[Sent]]:
    """Serve *app* as a server does: read the body, then close it."""
    reports: list[Sent] = []
    body = observe(app, environ, start_response, reports.append)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return data, reports


def test_body_is_counted_and_reported_when_closed() -> None:
    reports: list[Sent] = []
    body = observe(
        app_with([b"abc", b"", b"defg"], "206 Partial Content"),
        {},
        start_response,
        reports.append,
    )

    assert b"".join(body) == b"abcdefg"
    assert reports == []
    body.close()
    assert reports == [Sent(206, 7)]


def test_size_is_what_was_sent_not_what_was_announced() -> None:
    """A HEAD answer announces the file's length and sends nothing."""
    assert run(app_with([], length="5000"), {}) == (b"", [Sent(200, 0)])


def test_a_body_read_in_part_reports_what_was_read() -> None:
    """A client that goes away stops the server reading; close still comes."""
    reports: list[Sent] = []
    body = observe(app_with([b"12345", b"67890"]), {}, start_response, reports.append)

    next(iter(body))
    body.close()

    assert reports == [Sent(200, 5)]


def test_the_body_is_closed_and_reported_once() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    reports: list[Sent] = []
    body = observe(app_with(Body()), {}, start_response, reports.append)
    list(body)
    body.close()
    body.close()

    assert reports == [Sent(200, 1)]
    assert closed == [True, True]


def test_report_comes_even_when_closing_the_body_fails() -> None:
    class Body:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"xy"])

        def close(self) -> None:
            raise OSError("gone")

    reports: list[Sent] = []
    body = observe(app_with(Body()), {}, start_response, reports.append)
    list(body)

    with pytest.raises(OSError):
        body.close()
    assert reports == [Sent(200, 2)]


def test_the_servers_file_wrapper_is_passed_on_untouched() -> None:
    """Wrapping it would stop the server from sending the file with sendfile."""
    environ: Environ = {"wsgi.file_wrapper": FileWrapper}
    wrapper = FileWrapper(io.BytesIO(b"z" * 100))
    reports: list[Sent] = []

    body = observe(
        app_with(wrapper, length="100"), environ, start_response, reports.append
    )

    assert body is wrapper
    assert reports == [Sent(200, 100)]
    wrapper.close()


def test_a_file_wrapper_without_content_length_has_no_size() -> None:
    environ: Environ = {"wsgi.file_wrapper": FileWrapper}
    wrapper = FileWrapper(io.BytesIO(b"z"))
    reports: list[Sent] = []

    observe(app_with(wrapper), environ, start_response, reports.append)

    assert reports == [Sent(200, None)]
    wrapper.close()


def test_a_file_wrapper_that_is_a_function_is_counted() -> None:
    """Some servers offer a function; its bodies cannot be recognised."""
    environ: Environ = {"wsgi.file_wrapper": lambda file, size=8192: FileWrapper(file)}

    assert run(app_with([b"abc"]), environ) == (b"abc", [Sent(200, 3)])


def test_status_is_none_when_no_response_was_started() -> None:
    def lazy(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        raise RuntimeError("before start_response")
        yield b""  # a generator: start_response would come at the first read

    reports: list[Sent] = []
    body = observe(lazy, {}, start_response, reports.append)
    with pytest.raises(RuntimeError):
        list(body)
    body.close()

    assert reports == [Sent(None, 0)]


def test_the_last_start_response_wins() -> None:
    """An application may replace its answer with an error (exc_info)."""

    def failing(environ: Environ, start: Callable[..., Any]) -> list[bytes]:
        start("200 OK", [("Content-Length", "10")])
        start(
            "500 Internal Server Error", [("Content-Length", "3")], (None, None, None)
        )
        return [b"err"]

    assert run(failing, {}) == (b"err", [Sent(500, 3)])
