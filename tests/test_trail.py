"""The access trail: records written as JSON lines, to a file or a logger."""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import logging
import os
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from static_gate.errors import ConfigError
from static_gate.trail import TRAIL_LOGGER, Trail, TrailConfig

KEY = b"k" * 48
OTHER_KEY = b"o" * 48
#: 2027-01-15T08:00:00Z
WHEN = 1_800_000_000.0
KEYS = (
    "time",
    "event",
    "user",
    "share",
    "client",
    "method",
    "path",
    "rule",
    "decision",
    "reason",
    "status",
    "bytes",
)


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    return tmp_path / "trail.jsonl"


@pytest.fixture
def make_trail(trail_path: Path) -> Iterator[Callable[..., Trail]]:
    """Build trails writing to ``trail.jsonl``; each is closed after the test."""
    made: list[Trail] = []

    def make(key: bytes = KEY, **options: Any) -> Trail:
        options.setdefault("file", trail_path)
        trail = Trail(TrailConfig(**options), key)
        made.append(trail)
        return trail

    yield make
    for trail in made:
        trail.close()


class Collect(logging.Handler):
    """A handler that keeps the messages of the trail's records."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == TRAIL_LOGGER:
            self.lines.append(record.getMessage())


@pytest.fixture
def listener() -> Iterator[list[str]]:
    """Lines that reach a handler attached to the trail's logger."""
    handler = Collect()
    logger = logging.getLogger(TRAIL_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def record_read(trail: Trail, path: str = "/reports/mia.html", **fields: Any) -> None:
    """Record that alice read *path*; *fields* override the defaults."""
    values: dict[str, Any] = {
        "user": "alice",
        "client": "203.0.113.7",
        "method": "GET",
        "path": path,
        "rule": "/reports/",
        "decision": "allow",
        "reason": "user listed",
        "status": 200,
        "sent": 1234,
    }
    when = fields.pop("when", WHEN)
    values.update(fields)
    trail.content(when, **values)


def test_content_record_holds_every_field_in_order(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    trail = make_trail()

    record_read(trail)

    [line] = trail_path.read_text().splitlines()
    assert json.loads(line) == {
        "time": "2027-01-15T08:00:00Z",
        "event": "content",
        "user": "alice",
        "share": None,
        "client": "203.0.113.7",
        "method": "GET",
        "path": "/reports/mia.html",
        "rule": "/reports/",
        "decision": "allow",
        "reason": "user listed",
        "status": 200,
        "bytes": 1234,
    }
    assert tuple(json.loads(line)) == KEYS
    assert line.isascii()


def test_event_record_has_the_same_keys_with_nulls(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    trail = make_trail()

    trail.event(
        WHEN + 1.9,
        "login-failed",
        client="203.0.113.7",
        user="bob",
        reason="wrong user name or password",
        status=401,
    )

    [record] = read_lines(trail_path)
    assert tuple(record) == KEYS
    assert record["time"] == "2027-01-15T08:00:01Z"
    assert record["event"] == "login-failed"
    assert record["user"] == "bob"
    assert record["status"] == 401
    assert record["method"] is record["path"] is record["bytes"] is None


def test_share_link_reads_are_recorded_by_id(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    trail = make_trail()

    record_read(trail, user=None, share="Zm9vYmFyYmF6cXV4cXV1eA")

    [record] = read_lines(trail_path)
    assert record["user"] is None
    assert record["share"] == "Zm9vYmFyYmF6cXV4cXV1eA"


@pytest.mark.parametrize("status", [200, 204, 206, 304, 403])
def test_content_answers_are_recorded(
    make_trail: Callable[..., Trail], trail_path: Path, status: int
) -> None:
    record_read(make_trail(), status=status)

    assert [record["status"] for record in read_lines(trail_path)] == [status]


@pytest.mark.parametrize("status", [None, 303, 308, 401, 404, 405, 416, 500, 503])
def test_answers_without_content_are_not_recorded(
    make_trail: Callable[..., Trail], trail_path: Path, status: int | None
) -> None:
    record_read(make_trail(), status=status)

    assert trail_path.read_text() == ""


def test_unknown_byte_count_is_null(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    """A file the front server sent has no byte count the gate could know."""
    record_read(make_trail(), sent=None)

    assert read_lines(trail_path)[0]["bytes"] is None


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("/reports/mia.html?token=s3cr3t", "/reports/mia.html"),
        ("/reports/?a=1?b=2", "/reports/"),
        ("/?", "/"),
        ("/_gate/share/TOKEN", "/_gate/share/"),
        ("/_gate/share/TOKEN/more", "/_gate/share/"),
        ("/_gate/login", "/_gate/login"),
        ("/_gate/login?next=/x", "/_gate/login"),
    ],
)
def test_paths_lose_query_strings_and_share_tokens(
    make_trail: Callable[..., Trail], trail_path: Path, given: str, recorded: str
) -> None:
    make_trail().event(WHEN, "share-opened", client="198.51.100.2", path=given)

    assert read_lines(trail_path)[0]["path"] == recorded


TOKEN = st.text(string.ascii_letters + string.digits + "-_.~%=", min_size=12)
SEGMENT = st.text(min_size=1).filter(lambda s: "?" not in s and "/" not in s)
PATH = st.lists(SEGMENT).filter(lambda segments: segments[:1] != ["_gate"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=PATH, query=TOKEN, token=TOKEN)
def test_no_query_string_or_share_token_ever_reaches_the_file(
    make_trail: Callable[..., Trail],
    trail_path: Path,
    segments: list[str],
    query: str,
    token: str,
) -> None:
    """Whatever path a caller passes, a secret after ``?`` or in a link is gone."""
    secret_query = "SECRETQ" + query
    secret_token = "SECRETT" + token
    trail = make_trail()
    trail_path.write_text("")
    path = "/" + "/".join(segments)

    record_read(trail, path=f"{path}?token={secret_query}")
    trail.event(WHEN, "share-opened", client="-", path=f"/_gate/share/{secret_token}")
    trail.event(WHEN, "login", client="-", path=f"/_gate/login?{secret_query}")

    text = trail_path.read_text()
    assert "SECRETQ" not in text and "SECRETT" not in text
    assert [record["path"] for record in read_lines(trail_path)] == [
        path,
        "/_gate/share/",
        "/_gate/login",
    ]
    trail.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.text(max_size=64), path=st.text(max_size=200))
def test_any_value_stays_on_one_ascii_line(
    make_trail: Callable[..., Trail], trail_path: Path, user: str, path: str
) -> None:
    """Control characters, line breaks and lone surrogates are escaped."""
    trail = make_trail()
    trail_path.write_text("")

    trail.event(WHEN, "login-failed", client="-", user=user, path="/" + path)

    text = trail_path.read_text()
    assert text.isascii() and text.count("\n") == 1 and text.endswith("\n")
    assert json.loads(text)["user"] == (user or None)
    trail.close()


def test_client_addresses_are_kept_as_they_are_by_default(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    record_read(make_trail(), client="2001:db8::1")

    assert read_lines(trail_path)[0]["client"] == "2001:db8::1"


def hashed(key: bytes, address: str, tmp_path: Path) -> str:
    """The trail's hash of *address* under *key*."""
    path = tmp_path / f"hashed-{len(list(tmp_path.iterdir()))}.jsonl"
    trail = Trail(TrailConfig(path, hash_addresses=True), key)
    try:
        trail.event(WHEN, "login", client=address, user="alice")
    finally:
        trail.close()

    return str(read_lines(path)[0]["client"])


def test_hashed_address_is_h_and_16_hex_digits(tmp_path: Path) -> None:
    value = hashed(KEY, "203.0.113.7", tmp_path)

    assert value.startswith("h:")
    assert len(value) == 18 and all(c in string.hexdigits for c in value[2:])
    assert "203.0.113.7" not in value


def test_hash_is_stable_for_one_key(tmp_path: Path) -> None:
    """Two gates of one site (or one gate after a restart) agree."""
    assert hashed(KEY, "203.0.113.7", tmp_path) == hashed(KEY, "203.0.113.7", tmp_path)


def test_hash_differs_with_another_key(tmp_path: Path) -> None:
    assert hashed(KEY, "203.0.113.7", tmp_path) != hashed(
        OTHER_KEY, "203.0.113.7", tmp_path
    )


def test_hash_differs_between_addresses(tmp_path: Path) -> None:
    assert hashed(KEY, "203.0.113.7", tmp_path) != hashed(KEY, "203.0.113.8", tmp_path)


def test_hash_is_not_a_plain_digest_of_the_address(tmp_path: Path) -> None:
    """Without the key, hashing every IPv4 address finds nothing."""
    value = hashed(KEY, "203.0.113.7", tmp_path)[2:]

    assert value != hashlib.sha256(b"203.0.113.7").hexdigest()[:16]
    assert value != hmac.new(KEY, b"203.0.113.7", "sha256").hexdigest()[:16]


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o002, 0o000])
def test_new_file_has_mode_0640_whatever_the_umask(
    make_trail: Callable[..., Trail], trail_path: Path, umask: int
) -> None:
    previous = os.umask(umask)
    try:
        make_trail()
    finally:
        os.umask(previous)

    assert trail_path.stat().st_mode & 0o777 == 0o640


def test_existing_file_keeps_its_mode(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    """A file logrotate made with ``create 0600`` stays as the admin chose."""
    trail_path.touch(mode=0o600)
    trail_path.chmod(0o600)

    record_read(make_trail())

    assert trail_path.stat().st_mode & 0o777 == 0o600
    assert len(read_lines(trail_path)) == 1


def test_records_are_appended(
    make_trail: Callable[..., Trail], trail_path: Path
) -> None:
    trail_path.write_text('{"time":"2027-01-01T00:00:00Z","event":"login"}\n')

    record_read(make_trail())

    assert [record["event"] for record in read_lines(trail_path)] == [
        "login",
        "content",
    ]


@pytest.mark.parametrize("rotate", ["move", "remove"])
def test_file_is_reopened_after_logrotate_moves_it(
    make_trail: Callable[..., Trail], trail_path: Path, rotate: str
) -> None:
    """The next record after a rotation starts a new file, with mode 0640."""
    trail = make_trail()
    record_read(trail, path="/before.html")
    rotated = trail_path.with_name("trail.jsonl.1")
    if rotate == "move":
        trail_path.rename(rotated)
    else:
        trail_path.unlink()

    previous = os.umask(0o077)
    try:
        record_read(trail, path="/after.html")
    finally:
        os.umask(previous)

    assert [record["path"] for record in read_lines(trail_path)] == ["/after.html"]
    assert trail_path.stat().st_mode & 0o777 == 0o640
    if rotate == "move":
        assert [r["path"] for r in read_lines(rotated)] == ["/before.html"]


def test_a_trail_dropped_without_close_closes_its_file(trail_path: Path) -> None:
    """No file stays open (and no ResourceWarning comes) after a reload."""
    trail = Trail(TrailConfig(trail_path), KEY)
    record_read(trail)

    del trail
    gc.collect()

    assert len(read_lines(trail_path)) == 1


def test_after_close_records_no_longer_reach_the_file(
    trail_path: Path, listener: list[str]
) -> None:
    trail = Trail(TrailConfig(trail_path), KEY)
    trail.close()
    trail.close()

    record_read(trail)

    assert trail_path.read_text() == ""
    assert len(listener) == 1


def test_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "trail.jsonl"

    with pytest.raises(ConfigError, match=r"\[trail\] file .* cannot be opened"):
        Trail(TrailConfig(missing), KEY, where="gate.toml")


def test_without_a_file_records_go_to_the_logger(listener: list[str]) -> None:
    trail = Trail(TrailConfig(), KEY)

    record_read(trail)

    [line] = listener
    assert json.loads(line)["path"] == "/reports/mia.html"


def test_with_a_file_records_go_to_the_logger_too(
    make_trail: Callable[..., Trail], trail_path: Path, listener: list[str]
) -> None:
    record_read(make_trail())

    assert listener == trail_path.read_text().splitlines()


def test_records_stay_out_of_the_ordinary_log(
    make_trail: Callable[..., Trail], listener: list[str]
) -> None:
    """The root logger never sees them: they would repeat every request."""
    root_handler = Collect()
    logging.getLogger().addHandler(root_handler)
    try:
        record_read(make_trail())
    finally:
        logging.getLogger().removeHandler(root_handler)

    assert listener
    assert root_handler.lines == []


def test_without_a_file_or_a_handler_nothing_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trail = Trail(TrailConfig(), KEY)
    # pytest attaches its own capturing handlers to non-propagating loggers.
    monkeypatch.setattr(logging.getLogger(TRAIL_LOGGER), "handlers", [])

    assert not trail.enabled


def test_with_a_handler_or_a_file_the_trail_is_enabled(
    make_trail: Callable[..., Trail], listener: list[str]
) -> None:
    assert Trail(TrailConfig(), KEY).enabled
    assert make_trail().enabled
