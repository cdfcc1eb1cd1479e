"""Share links in the state stores: memory, SQLite and a real Redis server."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from static_gate.stores import ShareRecord, Store, StoreError
from static_gate.stores.sqlite import SqliteStore

# The Redis fixture and the store factory of test_stores.  Imported here, the
# session fixture starts a second redis-server for this file.
from test_stores import LOCAL_KINDS, T, make_store, near, record
from test_stores import redis_url as redis_url  # noqa: F401  (a fixture)

DAY = 86400


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


def link(
    share_id: str,
    path: str = "/reports/",
    uses: int | None = None,
    created: float = 0,
    lifetime: int = DAY,
    note: str = "",
    by: str = "alice",
) -> ShareRecord:
    """A link made at *created* (default: now) that lasts *lifetime*."""
    made = int(created or time.time())
    return ShareRecord(share_id, path, by, made, made + lifetime, uses, note)


# -- adding, reading, revoking --------------------------------------------------


def test_added_share_is_live(store: Store) -> None:
    share = link("a1", note="for the review")
    store.add_share(share)

    assert store.get_share("a1", time.time()) == share
    assert store.get_share("b1", time.time()) is None


def test_share_fields_round_trip(store: Store) -> None:
    share = link(
        "a1", "/Berichte 2024/ü|x 'y'.html", 3, note='say "hi" | ok', by="@root"
    )
    store.add_share(share)

    assert store.get_share("a1", time.time()) == share
    assert store.list_shares(time.time()) == [share]


def test_share_past_its_expiry_is_not_live(store: Store) -> None:
    store.add_share(link("old", created=time.time() - 2 * DAY))

    assert store.get_share("old", time.time()) is None
    assert store.use_share("old", time.time()) is None
    assert store.list_shares(time.time()) == []


def test_share_ends_when_now_reaches_expires(local_store: Store) -> None:
    share = link("a1", uses=5, created=T)
    local_store.add_share(share)

    assert local_store.get_share("a1", share.expires - 1) == share
    assert local_store.list_shares(share.expires - 1) == [share]
    assert local_store.get_share("a1", share.expires) is None
    assert local_store.use_share("a1", share.expires) is None
    assert local_store.list_shares(share.expires) == []
    assert local_store.use_share("a1", share.expires - 1) is not None


def test_revoked_share_is_gone(store: Store) -> None:
    store.add_share(link("a1"))
    store.add_share(link("b1"))

    assert store.revoke_share("a1") is True

    assert store.get_share("a1", time.time()) is None
    assert store.use_share("a1", time.time()) is None
    assert [share.id for share in store.list_shares(time.time())] == ["b1"]
    assert store.revoke_share("a1") is False


def test_revoking_an_unknown_share_ends_nothing(store: Store) -> None:
    store.add_share(link("a1"))

    assert store.revoke_share("nope") is False
    assert store.get_share("a1", time.time()) is not None


def test_adding_the_same_id_replaces_the_share(store: Store) -> None:
    store.add_share(link("a1", "/old/", uses=2))
    store.add_share(link("a1", "/new/"))

    share = store.get_share("a1", time.time())

    assert share is not None
    assert (share.path, share.uses_left) == ("/new/", None)


def test_shares_are_listed_oldest_first(store: Store) -> None:
    now = time.time()
    shares = [link("c1", created=now - 30), link("a1", created=now - 10)]
    shares += [link("b1", created=now - 50), link("d1", created=now - 50)]
    for share in shares:
        store.add_share(share)
    store.add_share(link("gone", created=now - 2 * DAY))
    store.add_share(link("revoked", created=now - 20))
    store.revoke_share("revoked")

    listed = store.list_shares(time.time())

    assert [share.id for share in listed] == ["b1", "d1", "c1", "a1"]


def test_shares_and_sessions_do_not_mix(store: Store) -> None:
    store.add_session(record("h1", "alice"))
    store.add_share(link("a1", by="alice"))

    assert [session.handle for session in store.list_sessions(time.time())] == ["h1"]
    assert store.remove_user_sessions("alice") == 1
    assert [share.id for share in store.list_shares(time.time())] == ["a1"]


# -- using ----------------------------------------------------------------------


def test_unlimited_share_opens_every_time(store: Store) -> None:
    share = link("a1")
    store.add_share(share)

    opened = [store.use_share("a1", time.time()) for _ in range(20)]

    assert opened == [share] * 20
    assert store.get_share("a1", time.time()) == share


def test_limited_share_counts_down_to_zero(store: Store) -> None:
    store.add_share(link("a1", uses=3))

    opened = [store.use_share("a1", time.time()) for _ in range(5)]

    assert [share.uses_left for share in opened[:3] if share] == [2, 1, 0]
    assert opened[3:] == [None, None]


def test_spent_share_stays_live_until_it_expires(store: Store) -> None:
    """Browsers that opened it keep reading; nobody can open it again."""
    store.add_share(link("a1", uses=1))
    assert store.use_share("a1", time.time()) is not None

    share = store.get_share("a1", time.time())

    assert share is not None
    assert share.uses_left == 0
    assert store.use_share("a1", time.time()) is None
    assert [listed.uses_left for listed in store.list_shares(time.time())] == [0]


def test_using_an_unknown_share_opens_nothing(store: Store) -> None:
    assert store.use_share("nope", time.time()) is None


def test_racing_threads_spend_each_use_once(store: Store) -> None:
    store.add_share(link("a1", uses=5))
    start = threading.Barrier(8)
    opened: list[ShareRecord] = []

    def open_link() -> None:
        start.wait(10)
        for _ in range(4):
            share = store.use_share("a1", time.time())
            if share is not None:
                opened.append(share)

    threads = [threading.Thread(target=open_link) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(opened) == 5
    assert {share.uses_left for share in opened} == {0, 1, 2, 3, 4}


# -- Redis specifics ------------------------------------------------------------


def test_redis_share_key_is_prefixed_and_expires_with_the_link(
    redis_store: Store,
) -> None:
    share = link("a1", uses=3, lifetime=3600)
    redis_store.add_share(share)
    redis_store.use_share("a1", time.time())
    client = redis_store.client  # type: ignore[attr-defined]

    keys = list(client.scan_iter("*"))

    assert keys == ["static-gate:share:a1"]
    assert client.ttl(keys[0]) == near(share.expires - time.time())


def test_unreachable_redis_raises_store_error() -> None:
    from static_gate.stores.redis import RedisStore
    from test_stores import _free_port

    store = RedisStore(f"redis://127.0.0.1:{_free_port()}/0")
    try:
        for call in (
            lambda: store.add_share(link("a1")),
            lambda: store.use_share("a1", time.time()),
            lambda: store.get_share("a1", time.time()),
            lambda: store.list_shares(time.time()),
            lambda: store.revoke_share("a1"),
        ):
            with pytest.raises(StoreError):
                call()
    finally:
        store.close()


# -- SQLite specifics -----------------------------------------------------------


def _open_link(path: str, attempts: int, start: object, results: object) -> None:
    """Run in a child process: try to open link "a1" *attempts* times."""
    store = SqliteStore(Path(path))
    try:
        assert start.wait(30)  # type: ignore[attr-defined]
        opened = sum(store.use_share("a1", T) is not None for _ in range(attempts))
        results.put(opened)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_sqlite_processes_racing_open_a_link_exactly_its_uses(tmp_path: Path) -> None:
    path = tmp_path / "state" / "static-gate.sqlite3"
    store = SqliteStore(path)
    store.add_share(link("a1", uses=5, created=T))
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_open_link, args=(str(path), 5, start, results))
        for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    start.set()

    try:
        opened = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * 6
        assert sum(opened) == 5
        share = store.get_share("a1", T)
        assert share is not None
        assert share.uses_left == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
        store.close()


def test_sqlite_file_from_before_shares_gains_the_table(tmp_path: Path) -> None:
    """A store made by an earlier version keeps its sessions and takes links."""
    path = tmp_path / "static-gate.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE sessions (handle TEXT PRIMARY KEY, user TEXT NOT NULL, "
            "client TEXT NOT NULL, started INTEGER NOT NULL, "
            "last_seen INTEGER NOT NULL, expires INTEGER NOT NULL)"
        )
        session = record("h1")
        old.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", (
            session.handle, session.user, session.client, session.started,
            session.last_seen, session.expires,
        ))  # fmt: skip
    old.close()
    store = SqliteStore(path, create=False)

    try:
        store.add_share(link("a1"))
        assert store.get_share("a1", time.time()) is not None
        assert store.has_session("h1", time.time())
    finally:
        store.close()


def test_sqlite_share_methods_fail_while_the_store_is_out_of_reach(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    folder.write_text("not a folder")
    store = SqliteStore(folder / "static-gate.sqlite3")

    for call in (
        lambda: store.add_share(link("a1")),
        lambda: store.use_share("a1", time.time()),
        lambda: store.get_share("a1", time.time()),
        lambda: store.list_shares(time.time()),
        lambda: store.revoke_share("a1"),
    ):
        with pytest.raises(StoreError):
            call()

    folder.unlink()
    store.add_share(link("a1"))
    assert store.use_share("a1", time.time()) is not None
