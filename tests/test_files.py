"""Serving the folder: types, caching, ranges, compression, folders, links."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from werkzeug.wsgi import FileWrapper

from conftest import (
    BufferedClient,
    signed_in,
)
from static_gate import Gate
from static_gate.files import is_case_sensitive

RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/admins/", "users": ["carol"]},
]
REPORT = b"<p>alice@example.org, +44 20 7946 0000</p>"
BROTLI = b"pretend brotli bytes"


@pytest.fixture
def alice(gate: Gate) -> BufferedClient:
    return signed_in(gate)


def vary(response: Any) -> set[str]:
    values = ", ".join(response.headers.getlist("Vary"))
    return {value.strip().lower() for value in values.split(",")}


# -- plain files --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("table.csv", "text/csv; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("data.json", "application/json"),
        ("image.svg", "image/svg+xml; charset=utf-8"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_type_follows_the_extension(
    site: Path, alice: BufferedClient, name: str, content_type: str
) -> None:
    (site / name).write_text("x", encoding="utf-8")

    response = alice.get(f"/{name}")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type


def test_file_response_carries_validators(alice: BufferedClient) -> None:
    response = alice.get("/report.html")

    assert response.data == REPORT
    assert response.headers["Content-Length"] == str(len(REPORT))
    assert response.headers["ETag"]
    assert response.headers["Last-Modified"]
    assert response.headers["Accept-Ranges"] == "bytes"


def test_matching_etag_gets_304_without_body(alice: BufferedClient) -> None:
    etag = alice.get("/report.html").headers["ETag"]

    response = alice.get("/report.html", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag


def test_other_etag_gets_the_file(alice: BufferedClient) -> None:
    response = alice.get("/report.html", headers={"If-None-Match": '"other"'})

    assert response.status_code == 200
    assert response.data == REPORT


def test_unchanged_since_gets_304(alice: BufferedClient) -> None:
    modified = alice.get("/report.html").headers["Last-Modified"]

    response = alice.get("/report.html", headers={"If-Modified-Since": modified})

    assert response.status_code == 304
    assert response.data == b""


def test_changed_file_gets_a_new_etag(site: Path, alice: BufferedClient) -> None:
    etag = alice.get("/report.html").headers["ETag"]
    (site / "report.html").write_bytes(REPORT + b"<p>more</p>")

    response = alice.get("/report.html", headers={"If-None-Match": etag})

    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_range_gets_206_with_the_bytes_asked_for(alice: BufferedClient) -> None:
    response = alice.get("/report.html", headers={"Range": "bytes=0-9"})

    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(REPORT)}"
    assert response.headers["Content-Length"] == "10"
    assert response.data == REPORT[:10]


def test_suffix_range_gets_the_end_of_the_file(alice: BufferedClient) -> None:
    response = alice.get("/report.html", headers={"Range": "bytes=-5"})

    assert response.status_code == 206
    assert response.data == REPORT[-5:]


def test_unsatisfiable_range_gets_416(alice: BufferedClient) -> None:
    response = alice.get("/report.html", headers={"Range": "bytes=500-900"})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(REPORT)}"
    assert REPORT not in response.data
    # A length that promises bytes never sent stalls a keep-alive connection.
    assert int(response.headers.get("Content-Length", "0")) == len(response.data)


def test_head_sends_headers_without_body(alice: BufferedClient) -> None:
    response = alice.head("/report.html")

    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(REPORT))
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.data == b""


# -- precompressed siblings -----------------------------------------------------


@pytest.fixture
def compressed(site: Path) -> bytes:
    """Put .br and .gz siblings beside report.html; return the gzip bytes."""
    (site / "report.html.br").write_bytes(BROTLI)
    packed = gzip.compress(REPORT)
    (site / "report.html.gz").write_bytes(packed)
    return packed


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("deflate", None),
        ("", None),
    ],
)
def test_precompressed_sibling_is_chosen_by_accept_encoding(
    compressed: bytes, alice: BufferedClient, accept: str, encoding: str | None
) -> None:
    headers = {"Accept-Encoding": accept} if accept else {}

    response = alice.get("/report.html", headers=headers)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "accept-encoding" in vary(response)
    assert "cookie" in vary(response)
    assert response.headers.get("Content-Encoding") == encoding
    expected = {"br": BROTLI, "gzip": compressed, None: REPORT}[encoding]
    assert response.data == expected
    assert response.headers["Content-Length"] == str(len(expected))


def test_each_encoding_has_its_own_etag(
    compressed: bytes, alice: BufferedClient
) -> None:
    tags = {
        alice.get("/report.html", headers={"Accept-Encoding": accept}).headers["ETag"]
        for accept in ("br", "gzip", "identity")
    }

    assert len(tags) == 3


def test_precompressed_off_ignores_siblings(
    compressed: bytes, make_gate: Callable[..., Gate]
) -> None:
    gate = make_gate(static={"precompressed": False}, rules=RULES)

    response = signed_in(gate).get("/report.html", headers={"Accept-Encoding": "br"})

    assert response.data == REPORT
    assert "Content-Encoding" not in response.headers
    assert "accept-encoding" not in vary(response)


def test_file_without_siblings_does_not_vary_on_encoding(
    alice: BufferedClient,
) -> None:
    response = alice.get("/report.html", headers={"Accept-Encoding": "br"})

    assert "Content-Encoding" not in response.headers
    assert "accept-encoding" not in vary(response)


# -- hidden and missing ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.htaccess", "/.hidden/secret.txt", "/.hidden/", "/public/.env"]
)
def test_dotfiles_and_dot_folders_are_not_found(
    site: Path, gate: Gate, path: str
) -> None:
    (site / "public" / ".env").write_text("SECRET=1", encoding="utf-8")

    for user in ("carol", None):
        response = signed_in(gate, user).get(path)
        assert response.status_code in (303, 404)
        assert response.status_code == 404 or user is None
        assert b"dot" not in response.data
        assert b"SECRET" not in response.data


def test_folder_without_slash_redirects_keeping_the_query(
    alice: BufferedClient,
) -> None:
    response = alice.get("/folder?x=1&y=%20")

    assert response.status_code == 308
    assert response.headers["Location"] == "/folder/?x=1&y=%20"


def test_folder_with_index_serves_it(alice: BufferedClient) -> None:
    response = alice.get("/folder/")

    assert response.status_code == 200
    assert response.data == b"<p>folder index</p>"


def test_file_with_a_slash_is_not_found(alice: BufferedClient) -> None:
    assert alice.get("/report.html/").status_code == 404


def test_folder_without_index_is_not_listed_by_default(
    alice: BufferedClient,
) -> None:
    response = alice.get("/nolist/")

    assert response.status_code == 404
    assert b"a.txt" not in response.data


@pytest.fixture
def listed(site: Path, make_gate: Callable[..., Gate]) -> Gate:
    """A listed folder /open/ that anyone may read, with closed entries."""
    folder = site / "open"
    (folder / "staff").mkdir(parents=True)
    (folder / "staff" / "plan.txt").write_text("plan", encoding="utf-8")
    for name in ("a.txt", "<b>&x.txt", ".secret", "carol.txt"):
        (folder / name).write_text(name, encoding="utf-8")
    return make_gate(
        static={"directory_listing": True},
        rules=[
            {"path": "/open/", "allow": "anyone"},
            {"path": "/open/staff/", "groups": ["staff"]},
            {"path": "/open/carol.txt", "users": ["carol"]},
        ],
    )


@pytest.mark.parametrize(
    ("user", "visible", "hidden"),
    [
        (None, ["a.txt"], ["staff/", "carol.txt"]),
        ("bob", ["a.txt"], ["staff/", "carol.txt"]),
        ("alice", ["a.txt", "staff/"], ["carol.txt"]),
        ("carol", ["a.txt", "staff/", "carol.txt"], []),
    ],
)
def test_listing_shows_only_what_the_visitor_may_open(
    listed: Gate, user: str | None, visible: list[str], hidden: list[str]
) -> None:
    response = signed_in(listed, user).get("/open/")

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    for name in visible:
        assert f'href="./{name}"' in text
    for name in hidden:
        assert f'href="./{name}"' not in text
    assert ".secret" not in text


def test_listing_escapes_names(listed: Gate) -> None:
    text = signed_in(listed, None).get("/open/").get_data(as_text=True)

    assert "<b>&x" not in text
    assert "&lt;b&gt;&amp;x.txt" in text
    assert 'href="./%3Cb%3E&amp;x.txt"' in text


def test_listing_respects_the_folder_rule(listed: Gate) -> None:
    anonymous = signed_in(listed, None)

    assert anonymous.get("/open/staff/").status_code == 303
    assert anonymous.get("/").status_code == 303


# -- symbolic links ---------------------------------------------------------------


def test_link_out_of_the_root_is_not_found(site: Path, gate: Gate) -> None:
    (site / "public" / "out.txt").symlink_to(site.parent / "outside.txt")

    for user in (None, "carol"):
        response = signed_in(gate, user).get("/public/out.txt")
        assert response.status_code == 404
        assert b"outside the root" not in response.data


def test_link_inside_the_root_is_not_found_by_default(site: Path, gate: Gate) -> None:
    """A link in a public folder must not let the public rule decide about a
    protected file: the rule is judged on the link's path, not the target's."""
    (site / "public" / "grades.html").symlink_to(site / "staff" / "grades.html")

    for user in (None, "alice"):
        response = signed_in(gate, user).get("/public/grades.html")
        assert response.status_code == 404
        assert b"staff grades" not in response.data


def test_link_inside_the_root_is_served_with_follow_symlinks(
    site: Path, make_gate: Callable[..., Gate]
) -> None:
    (site / "report-link.html").symlink_to(site / "report.html")
    gate = make_gate(static={"follow_symlinks": True}, rules=RULES)

    response = signed_in(gate).get("/report-link.html")

    assert response.status_code == 200
    assert response.data == REPORT


def test_followed_link_is_judged_by_the_rule_of_its_target(
    site: Path, make_gate: Callable[..., Gate]
) -> None:
    """A link in a public folder does not make a staff file public."""
    (site / "public" / "grades.html").symlink_to(site / "staff" / "grades.html")
    gate = make_gate(static={"follow_symlinks": True}, rules=RULES)

    anonymous = signed_in(gate, None).get("/public/grades.html")
    bob = signed_in(gate, "bob").get("/public/grades.html")
    alice = signed_in(gate, "alice").get("/public/grades.html")

    assert anonymous.status_code == 303
    assert bob.status_code == 403
    assert alice.status_code == 200
    assert alice.data == b"<p>staff grades</p>"


@pytest.mark.parametrize(
    "path", ["/public/linked/grades.html", "/public/linked/", "/public/linked"]
)
def test_linked_folder_on_the_path_is_not_found(
    site: Path, gate: Gate, path: str
) -> None:
    (site / "public" / "linked").symlink_to(site / "staff", target_is_directory=True)

    for user in (None, "alice"):
        response = signed_in(gate, user).get(path)
        assert response.status_code == 404
        assert b"staff grades" not in response.data


def test_links_are_left_out_of_listings(site: Path, listed: Gate) -> None:
    (site / "open" / "link.txt").symlink_to(site / "open" / "a.txt")

    text = signed_in(listed, "carol").get("/open/").get_data(as_text=True)

    assert "link.txt" not in text


def test_absolute_filesystem_path_stays_under_the_root(
    site: Path, alice: BufferedClient
) -> None:
    outside = site.parent / "outside.txt"

    response = alice.get("/", environ_overrides={"PATH_INFO": str(outside)})

    assert response.status_code == 404
    assert b"outside the root" not in response.data


# -- streaming ------------------------------------------------------------------


class RecordingWrapper:
    """A ``wsgi.file_wrapper`` that remembers how it was used."""

    instances: list[RecordingWrapper] = []

    def __init__(self, file: IO[bytes], buffer_size: int = 8192) -> None:
        self.inner = FileWrapper(file, buffer_size)
        self.buffer_size = buffer_size
        self.blocks: list[int] = []
        self.closed = False
        RecordingWrapper.instances.append(self)

    def __iter__(self) -> Iterator[bytes]:
        for block in self.inner:
            self.blocks.append(len(block))
            yield block

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def test_large_file_is_streamed_through_the_file_wrapper(
    site: Path, alice: BufferedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 20 * 1024 * 1024
    with open(site / "big.bin", "wb") as file:
        file.truncate(size)  # sparse: costs no disk space
    monkeypatch.setattr(RecordingWrapper, "instances", [])

    response = alice.get(
        "/big.bin", environ_overrides={"wsgi.file_wrapper": RecordingWrapper}
    )

    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(size)
    [wrapper] = RecordingWrapper.instances
    assert sum(wrapper.blocks) == size
    assert max(wrapper.blocks) <= wrapper.buffer_size < size
    assert wrapper.closed


def test_file_that_vanishes_before_it_is_opened_is_not_found(
    site: Path, gate: Gate, alice: BufferedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = gate.folder
    assert folder is not None
    real_find = folder.find

    def find_then_delete(path: str) -> Any:
        found = real_find(path)
        os.remove(site / "report.html")
        return found

    monkeypatch.setattr(folder, "find", find_then_delete)

    response = alice.get("/report.html")

    assert response.status_code == 404
    assert REPORT not in response.data


def test_case_sensitivity_is_found_from_the_root_name(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()

    assert is_case_sensitive(root) is True

    # The same folder under the other case, as a case-blind file system has.
    (tmp_path / "SITE").symlink_to(root, target_is_directory=True)
    assert is_case_sensitive(root) is False


def test_case_sensitivity_looks_inside_when_the_root_has_no_letters(
    tmp_path: Path,
) -> None:
    root = tmp_path / "2026"
    root.mkdir()
    (root / "report.html").write_text("x")

    assert is_case_sensitive(root) is True

    (root / "REPORT.HTML").symlink_to(root / "report.html")
    assert is_case_sensitive(root) is False
