"""Answering with one file: conditional, ranged, HEAD-aware and streamed.

This is the hot path of a gate that serves a folder, so it builds the
status line and header list itself instead of a werkzeug ``Response``, and
opens the file only when a body will really be sent (not for HEAD, 304 or
416).  The HTTP decisions are werkzeug's own helpers: ``parse_range_header``
and ``is_resource_modified``, applied in the order werkzeug applies them.
Full bodies go through the server's ``wsgi.file_wrapper``, so a large file
is streamed (or sent with ``sendfile``) and never read into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, BinaryIO

from werkzeug.http import http_date, is_resource_modified, parse_range_header
from werkzeug.wsgi import wrap_file

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Bytes read at a time from a file.
BLOCK_SIZE = 64 * 1024

HeaderList = list[tuple[str, str]]


class FileAnswer:
    """A ready WSGI answer: a status line, headers and a body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: str, headers: HeaderList, body: Iterable[bytes]) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        return self.body


class _Span:
    """The bytes ``start`` to ``start + length`` of an open file, then closed."""

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self.file = file
        self.start = start
        self.length = length

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(self.start)
        left = self.length
        while left > 0:
            block = self.file.read(min(BLOCK_SIZE, left))
            if not block:
                break
            left -= len(block)
            yield block

    def close(self) -> None:
        self.file.close()


@lru_cache(maxsize=4096)
def _date(seconds: int) -> str:
    return http_date(seconds)


def answer_with_file(
    environ: WSGIEnvironment,
    filename: str,
    result: os.stat_result,
    content_type: str,
    encoding: str | None,
    headers: HeaderList,
) -> FileAnswer | None:
    """Return the answer for *filename*, or ``None`` if it cannot be opened.

    :param result: the file's ``stat`` result, taken by the caller.
    :param encoding: the ``Content-Encoding`` of a precompressed file.
    :param headers: headers for every outcome; the file's are added to it.
    """
    size = result.st_size
    tag = f"{result.st_mtime_ns:x}-{size:x}"
    etag = f'"{tag}-{encoding}"' if encoding else f'"{tag}"'
    last_modified = _date(int(result.st_mtime))
    headers += [
        ("Content-Type", content_type),
        ("ETag", etag),
        ("Last-Modified", last_modified),
        ("Accept-Ranges", "bytes"),
    ]
    if encoding:
        headers.append(("Content-Encoding", encoding))

    head = environ.get("REQUEST_METHOD") == "HEAD"
    if (
        "HTTP_RANGE" in environ
        and size
        and _range_applies(environ, etag, last_modified)
    ):
        parsed = parse_range_header(environ["HTTP_RANGE"])
        span = parsed.range_for_length(size) if parsed else None
        if span is None:
            headers += [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")]
            return FileAnswer("416 Range Not Satisfiable", headers, ())

        start, stop = span
        headers += [
            ("Content-Range", f"bytes {start}-{stop - 1}/{size}"),
            ("Content-Length", str(stop - start)),
        ]
        if head:
            return FileAnswer("206 Partial Content", headers, ())

        file = _open(filename)
        if file is None:
            return None
        return FileAnswer(
            "206 Partial Content", headers, _Span(file, start, stop - start)
        )

    if ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ) and (
        not is_resource_modified(environ, etag, last_modified=last_modified)
    ):
        return FileAnswer("304 Not Modified", headers, ())

    headers.append(("Content-Length", str(size)))
    if head:
        return FileAnswer("200 OK", headers, ())

    file = _open(filename)
    if file is None:
        return None
    return FileAnswer("200 OK", headers, wrap_file(environ, file, BLOCK_SIZE))


def _range_applies(environ: WSGIEnvironment, etag: str, last_modified: str) -> bool:
    # If-Range names the version the client holds part of; for any other
    # version the whole file is sent (RFC 9110, 13.1.5).
    return "HTTP_IF_RANGE" not in environ or not is_resource_modified(
        environ, etag, last_modified=last_modified, ignore_if_range=False
    )


def _open(filename: str) -> BinaryIO | None:
    try:
        return open(filename, "rb")  # closed by the WSGI server
    except OSError:
        return None
