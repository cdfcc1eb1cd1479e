"""A very large file is streamed in blocks, never read into memory whole."""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path

from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

from conftest import BufferedClient, login
from static_gate import Gate

GIB = 1024**3


def test_one_gigabyte_file_streams_through_the_file_wrapper(
    site: Path, make_gate: Callable[..., Gate]
) -> None:
    """The body is the server's file wrapper; reading it all keeps memory flat."""
    with open(site / "huge.bin", "wb") as file:
        file.truncate(GIB)  # sparse: costs no disk space

    gate = make_gate()
    client = BufferedClient(gate)
    login(client)
    cookie = client.get_cookie("static_gate")
    assert cookie is not None
    environ = EnvironBuilder(
        path="/huge.bin", headers={"Cookie": f"static_gate={cookie.value}"}
    ).get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    started: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        started.append(status)

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    body = gate(environ, start_response)
    try:
        assert isinstance(body, FileWrapper)
        total = sum(len(block) for block in body)
    finally:
        body.close()

    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert started == ["200 OK"]
    assert total == GIB
    assert peak_growth_kib < 64 * 1024
