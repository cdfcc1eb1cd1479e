"""The shared state stores: memory, SQLite and a real Redis server."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from static_gate.stores import (
    SessionRecord,
    Store,
    StoreError,
    open_store,
    session_handle,
)
from static_gate.stores.memory import MemoryStore
from static_gate.stores.sqlite import SqliteStore

HOUR = 3600
# Fixed times for the stores that take ``now`` from the caller.
T = 1_800_000_000.0
LOCAL_KINDS = ["memory", "sqlite"]


# -- a real Redis server ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start redis-server on a free loopback port; yield its URL."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: CI must test the Redis store")
        pytest.skip("redis-server is not installed")

    import redis

    folder = tmp_path_factory.mktemp("redis").resolve()
    port = _free_port()
    command = [
        server,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--dir", str(folder),
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        probe = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe.ping()
                    break
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log = folder / "redis.log"
                        text = log.read_text() if log.exists() else ""
                        pytest.fail(f"redis-server did not start:\n{text}")
                    time.sleep(0.02)
        finally:
            probe.close()

        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "memory":
        return MemoryStore()

    if kind == "sqlite":
        return SqliteStore(tmp_path / "state" / "static-gate.sqlite3")

    from static_gate.stores.redis import RedisStore

    store = RedisStore(request.getfixturevalue("redis_url"))
    store.client.flushdb()
    return store


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = make_store(request.param, tmp_path, request)
    yield opened
    opened.close()


@pytest.fixture(params=LOCAL_KINDS)
def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store that keeps time by the ``now`` its caller passes."""
    opened = make_store(request.param, tmp_path, request)
    yield opened
    opened.close()


@pytest.fixture
def redis_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = make_store("redis", tmp_path, request)
    yield opened
    opened.close()


def record(
    handle: str, user: str = "alice", started: float = 0, lifetime: int = HOUR
) -> SessionRecord:
    """A session that started at *started* (default: now) and lasts *lifetime*."""
    begun = int(started or time.time())
    return SessionRecord(handle, user, "192.0.2.1", begun, begun, begun + lifetime)


# Redis keeps time itself: what it reports can be off by a little.
def near(value: float) -> object:
    return pytest.approx(value, abs=2)


# -- sessions -----------------------------------------------------------------


def test_added_session_is_open(store: Store) -> None:
    store.add_session(record("h1"))

    assert store.has_session("h1", time.time())
    assert not store.has_session("h2", time.time())


def test_session_past_its_expiry_is_not_open(store: Store) -> None:
    store.add_session(record("old", started=time.time() - HOUR - 5))

    assert not store.has_session("old", time.time())
    assert store.list_sessions(time.time()) == []


def test_session_closes_when_now_reaches_expires(local_store: Store) -> None:
    session = record("h1", started=T)
    local_store.add_session(session)

    assert local_store.has_session("h1", session.expires - 1)
    assert not local_store.has_session("h1", session.expires)
    assert local_store.list_sessions(session.expires - 1) == [session]
    assert local_store.list_sessions(session.expires) == []


def test_removed_session_is_closed(store: Store) -> None:
    store.add_session(record("h1"))
    store.add_session(record("h2"))

    assert store.remove_session("h1") is True
    assert not store.has_session("h1", time.time())
    assert store.has_session("h2", time.time())
    assert store.remove_session("h1") is False


def test_removing_an_unknown_session_ends_nothing(store: Store) -> None:
    store.add_session(record("h1"))

    assert store.remove_session("nope") is False
    assert store.has_session("h1", time.time())


def test_touch_records_a_later_last_seen(store: Store) -> None:
    session = record("h1")
    store.add_session(session)

    store.touch_session("h1", session.started + 90)

    [listed] = store.list_sessions(time.time())
    assert listed.last_seen == session.started + 90
    assert listed.started == session.started
    assert listed.expires == session.expires


def test_touch_does_not_reopen_an_ended_session(store: Store) -> None:
    session = record("h1")
    store.add_session(session)
    store.remove_session("h1")

    store.touch_session("h1", session.started + 90)

    assert not store.has_session("h1", time.time())
    assert store.list_sessions(time.time()) == []


def test_remove_user_sessions_only_removes_that_users(store: Store) -> None:
    store.add_session(record("a1", "alice"))
    store.add_session(record("a2", "alice"))
    store.add_session(record("b1", "bob"))

    assert store.remove_user_sessions("alice") == 2

    assert not store.has_session("a1", time.time())
    assert not store.has_session("a2", time.time())
    assert store.has_session("b1", time.time())
    assert store.remove_user_sessions("alice") == 0


def test_sessions_are_listed_sorted_by_user_and_start(store: Store) -> None:
    now = int(time.time())
    sessions = [
        record("b1", "bob", started=now - 30),
        record("a2", "alice", started=now - 10),
        record("c1", "carol", started=now - 50),
        record("a1", "alice", started=now - 20),
    ]
    for session in sessions:
        store.add_session(session)
    store.add_session(record("gone", "alice", started=now - HOUR - 5))

    everyone = store.list_sessions(time.time())
    alice = store.list_sessions(time.time(), "alice")

    assert [s.handle for s in everyone] == ["a1", "a2", "b1", "c1"]
    assert everyone == sorted(sessions, key=lambda s: (s.user, s.started))
    assert [s.handle for s in alice] == ["a1", "a2"]
    assert store.list_sessions(time.time(), "dave") == []


def test_listing_shows_ended_sessions_no_more(store: Store) -> None:
    store.add_session(record("a1"))
    store.add_session(record("a2"))
    store.remove_session("a1")

    assert [s.handle for s in store.list_sessions(time.time(), "alice")] == ["a2"]
    assert [s.handle for s in store.list_sessions(time.time())] == ["a2"]


# -- failure counts -----------------------------------------------------------


def test_failures_are_counted_from_one(store: Store) -> None:
    now = time.time()

    counts = [store.add_failure("user:alice", now, 60) for _ in range(3)]

    assert [count for count, _ in counts] == [1, 2, 3]
    for _, resets in counts:
        assert resets == near(now + 60)
    count, resets = store.get_failures("user:alice", now)
    assert count == 3
    assert resets == near(now + 60)


def test_failures_are_counted_per_key(store: Store) -> None:
    now = time.time()
    store.add_failure("user:alice", now, 60)
    store.add_failure("user:alice", now, 60)

    assert store.add_failure("addr:192.0.2.1", now, 60)[0] == 1
    assert store.get_failures("user:alice", now)[0] == 2
    assert store.get_failures("user:bob", now) == (0, 0.0)


def test_cleared_failures_count_from_one_again(store: Store) -> None:
    now = time.time()
    store.add_failure("user:alice", now, 60)
    store.add_failure("addr:192.0.2.1", now, 60)

    store.clear_failures("user:alice")

    assert store.get_failures("user:alice", now) == (0, 0.0)
    assert store.get_failures("addr:192.0.2.1", now)[0] == 1
    assert store.add_failure("user:alice", now, 60)[0] == 1


def test_extend_failures_pushes_the_reset_later(store: Store) -> None:
    now = time.time()
    store.add_failure("user:alice", now, 60)

    store.extend_failures("user:alice", now, now + 600)

    assert store.get_failures("user:alice", now) == (1, near(now + 600))


def test_extend_failures_never_shortens(store: Store) -> None:
    now = time.time()
    store.add_failure("user:alice", now, 600)

    store.extend_failures("user:alice", now, now + 10)

    assert store.get_failures("user:alice", now) == (1, near(now + 600))


def test_extend_failures_of_an_unknown_key_counts_nothing(store: Store) -> None:
    now = time.time()

    store.extend_failures("user:alice", now, now + 600)

    assert store.get_failures("user:alice", now) == (0, 0.0)
    assert store.add_failure("user:alice", now, 60) == (1, near(now + 60))


def test_failure_count_resets_after_its_window(local_store: Store) -> None:
    local_store.add_failure("user:alice", T, 60)
    assert local_store.add_failure("user:alice", T + 59, 60) == (2, T + 60)

    assert local_store.get_failures("user:alice", T + 60) == (0, 0.0)
    assert local_store.add_failure("user:alice", T + 60, 60) == (1, T + 120)


def test_extended_count_outlives_its_window(local_store: Store) -> None:
    local_store.add_failure("user:alice", T, 60)
    local_store.extend_failures("user:alice", T, T + 600)

    assert local_store.add_failure("user:alice", T + 100, 60) == (2, T + 600)
    assert local_store.get_failures("user:alice", T + 599) == (2, T + 600)
    assert local_store.get_failures("user:alice", T + 600) == (0, 0.0)


def test_redis_failure_count_resets_after_its_window(redis_store: Store) -> None:
    now = time.time()
    redis_store.add_failure("user:alice", now, 1)
    assert redis_store.add_failure("user:alice", now, 1)[0] == 2

    time.sleep(1.1)  # Redis expires keys by its own clock.

    assert redis_store.get_failures("user:alice", time.time()) == (0, 0.0)
    assert redis_store.add_failure("user:alice", time.time(), 1)[0] == 1


def test_check_passes_on_a_working_store(store: Store) -> None:
    assert store.check() is None


# -- Redis specifics ----------------------------------------------------------


def test_every_redis_key_is_prefixed_and_expires(redis_store: Store) -> None:
    """Nothing stays in Redis forever, and keys are recognisably ours."""
    now = time.time()
    redis_store.add_session(record("a1", "alice"))
    redis_store.touch_session("a1", int(now) + 5)
    redis_store.add_session(record("b1", "bob"))
    redis_store.add_failure("user:alice", now, 60)
    redis_store.extend_failures("user:alice", now, now + 600)
    client = redis_store.client  # type: ignore[attr-defined]

    keys = list(client.scan_iter("*"))

    assert len(keys) == 5
    for key in keys:
        assert key.startswith("static-gate:")
        assert 0 < client.ttl(key) <= HOUR


def test_unreachable_redis_raises_store_error() -> None:
    from static_gate.stores.redis import RedisStore

    store = RedisStore(f"redis://:hunter2@127.0.0.1:{_free_port()}/0")
    try:
        with pytest.raises(StoreError) as caught:
            store.check()
        with pytest.raises(StoreError):
            store.has_session("h1", time.time())
    finally:
        store.close()

    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in store.description


# -- session handles and open_store -------------------------------------------


def test_session_handle_is_a_short_stable_digest() -> None:
    session_id = "Zm9vYmFyYmF6cXV4cXV1eA"

    handle = session_handle(session_id)

    assert re.fullmatch(r"[0-9a-f]{24}", handle)
    assert handle == session_handle(session_id)
    assert handle != session_handle(session_id + "x")
    assert session_id not in handle
    assert session_id[:8].lower() not in handle


def test_open_store_kinds(tmp_path: Path) -> None:
    from static_gate.stores.redis import RedisStore

    memory = open_store("memory", tmp_path)
    sqlite = open_store("sqlite", tmp_path / "state")
    named = open_store(f"sqlite:{tmp_path / 'other.db'}", tmp_path / "state")
    remote = open_store("redis://127.0.0.1:6379/3", tmp_path)
    try:
        assert isinstance(memory, MemoryStore)
        assert isinstance(sqlite, SqliteStore)
        assert sqlite.path == tmp_path / "state" / "static-gate.sqlite3"
        assert isinstance(named, SqliteStore)
        assert named.path == tmp_path / "other.db"
        assert isinstance(remote, RedisStore)
        assert not (tmp_path / "state").exists(), "opening connects to nothing"
    finally:
        remote.close()


@pytest.mark.parametrize("url", ["postgres://db/1", "mem", "", "SQLITE"])
def test_open_store_refuses_an_unknown_kind(tmp_path: Path, url: str) -> None:
    with pytest.raises(StoreError, match="unknown store"):
        open_store(url, tmp_path)


# -- SQLite across processes, failure and recovery ----------------------------


def _add_failures(path: str, times: int, start: object) -> None:
    """Run in a child process: count *times* failures on one key."""
    store = SqliteStore(Path(path))
    try:
        assert start.wait(30)  # type: ignore[attr-defined]
        for _ in range(times):
            store.add_failure("addr:192.0.2.1", T, 24 * HOUR)
    finally:
        store.close()


def test_sqlite_loses_no_failure_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "static-gate.sqlite3"
    store = SqliteStore(path)
    store.check()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_add_failures, args=(str(path), 500, start))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)

    try:
        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
        assert store.get_failures("addr:192.0.2.1", T) == (2000, T + 24 * HOUR)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
        store.close()


def _assert_store_fails(store: SqliteStore) -> None:
    now = time.time()
    with pytest.raises(StoreError, match=re.escape(store.description)):
        store.check()
    with pytest.raises(StoreError):
        store.has_session("h1", now)
    with pytest.raises(StoreError):
        store.add_failure("user:alice", now, 60)
    with pytest.raises(StoreError):
        store.add_session(record("h2"))


def _assert_store_works(store: SqliteStore) -> None:
    store.check()
    store.add_session(record("h3"))
    assert store.has_session("h3", time.time())
    assert store.add_failure("user:alice", time.time(), 60)[0] >= 1


def test_sqlite_fails_while_its_folder_is_a_file_and_recovers(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    folder.write_text("not a folder")
    store = SqliteStore(folder / "static-gate.sqlite3")

    _assert_store_fails(store)
    folder.unlink()
    _assert_store_works(store)


def test_sqlite_fails_while_its_file_is_a_directory_and_recovers(
    tmp_path: Path,
) -> None:
    """A worker that connects during the outage fails, then recovers."""
    path = tmp_path / "state" / "static-gate.sqlite3"
    path.mkdir(parents=True)
    store = SqliteStore(path)

    _assert_store_fails(store)
    path.rmdir()
    _assert_store_works(store)


def test_sqlite_notices_its_file_replaced_while_connected(tmp_path: Path) -> None:
    """An open connection must not go on with a file that was deleted.

    Otherwise sessions and sign-outs land in a file no other process sees.
    """
    path = tmp_path / "state" / "static-gate.sqlite3"
    store = SqliteStore(path)
    store.add_session(record("h1"))
    for part in path.parent.iterdir():
        part.unlink()
    path.mkdir()

    _assert_store_fails(store)
    path.rmdir()
    _assert_store_works(store)
    assert not store.has_session("h1", time.time())
