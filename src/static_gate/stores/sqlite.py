"""A store in a SQLite file: the default, shared by the workers of one host.

Each process opens its own connections, one per thread, after it has
started (a connection is never carried across ``fork``).  The file uses
write-ahead logging and every change is a single statement, so concurrent
workers lose no update.  Expired rows are deleted by the workers themselves,
at most once a minute each; no cron job is needed.

The folder holding the file must be writable by the worker processes,
because SQLite keeps its ``-wal`` and ``-shm`` files beside it.  Keep it on
a local disk: SQLite's locking is unreliable on network file systems.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import SessionRecord, ShareRecord, StoreError

T = TypeVar("T")

# Expired rows are swept at most this often per process, in seconds.
_SWEEP_INTERVAL = 60.0

# How long a statement waits for another process's write lock, in seconds.
_BUSY_TIMEOUT = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    handle TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    started INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    resets REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    uses_left INTEGER,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_by_expiry ON shares (expires);
"""

_SHARE_COLUMNS = "id, path, created_by, created, expires, uses_left, note"

# One statement, so two workers counting at once cannot lose a failure.
_ADD_FAILURE = """
INSERT INTO failures (key, count, resets) VALUES (:key, 1, :now + :window)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN resets <= :now THEN 1 ELSE count + 1 END,
    resets = CASE WHEN resets <= :now THEN :now + :window ELSE resets END
RETURNING count, resets
"""

# One statement, so two workers opening a link at once cannot both spend its
# last use.  A NULL uses_left (no limit) stays NULL.
_USE_SHARE = f"""
UPDATE shares SET uses_left = uses_left - 1
WHERE id = :id AND expires > :now AND (uses_left IS NULL OR uses_left > 0)
RETURNING {_SHARE_COLUMNS}
"""


class SqliteStore:
    def __init__(self, path: Path, create: bool = True) -> None:
        """:param create: make the file (and its folder) when missing; the
        command line passes ``False``, so that a command run by root never
        creates a store the server's user cannot write."""
        self.path = path
        self.create = create
        self.description = f"SQLite file {path}"
        self._local = threading.local()
        self._swept = 0.0

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = None
            local.pid = os.getpid()

        if local.connection is not None and self._identity() != local.identity:
            # The file was deleted or replaced: an open connection would go on
            # using the old, unlinked copy that no other process sees.
            local.connection.close()
            local.connection = None
            raise StoreError(f"{self.description}: the file was replaced or removed")

        if local.connection is None:
            local.connection = self._connect()
            local.identity = self._identity()

        connection: sqlite3.Connection = local.connection
        return connection

    def _identity(self) -> tuple[int, int] | None:
        try:
            result = os.stat(self.path)
        except OSError:
            return None

        return (result.st_dev, result.st_ino)

    def _connect(self) -> sqlite3.Connection:
        if not self.create and not self.path.exists():
            raise StoreError(
                f"{self.description} does not exist yet; it is created when the "
                "gate first starts"
            )

        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT, isolation_level=None
        )
        try:
            connection.execute("PRAGMA journal_mode = wal")
            connection.execute("PRAGMA synchronous = normal")
            connection.executescript(_SCHEMA)
        except sqlite3.Error:
            connection.close()
            raise

        return connection

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except (sqlite3.Error, OSError) as error:
            # Start afresh next time: the file may be back, or writable again.
            connection = getattr(self._local, "connection", None)
            self._local.connection = None
            if connection is not None:
                connection.close()
            raise StoreError(f"{self.description}: {error}") from None

    def _sweep(self, connection: sqlite3.Connection, now: float) -> None:
        if now - self._swept < _SWEEP_INTERVAL:
            return

        self._swept = now
        connection.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
        connection.execute("DELETE FROM failures WHERE resets <= ?", (now,))
        connection.execute("DELETE FROM shares WHERE expires <= ?", (now,))

    def check(self) -> None:
        def probe(connection: sqlite3.Connection) -> None:
            # Taking the write lock proves the file and its folder are writable.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")

        self._run(probe)

    def add_session(self, record: SessionRecord) -> None:
        def add(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.handle,
                    record.user,
                    record.client,
                    record.started,
                    record.last_seen,
                    record.expires,
                ),
            )
            self._sweep(connection, record.started)

        self._run(add)

    def has_session(self, handle: str, now: float) -> bool:
        def find(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM sessions WHERE handle = ? AND expires > ?",
                (handle, now),
            ).fetchone()
            return row is not None

        return self._run(find)

    def touch_session(self, handle: str, last_seen: int) -> None:
        self._run(
            lambda connection: connection.execute(
                "UPDATE sessions SET last_seen = ? WHERE handle = ?",
                (last_seen, handle),
            )
        )

    def remove_session(self, handle: str) -> bool:
        cursor = self._run(
            lambda connection: connection.execute(
                "DELETE FROM sessions WHERE handle = ?", (handle,)
            )
        )
        return cursor.rowcount > 0

    def remove_user_sessions(self, user: str) -> int:
        cursor = self._run(
            lambda connection: connection.execute(
                "DELETE FROM sessions WHERE user = ?", (user,)
            )
        )
        return cursor.rowcount

    def list_sessions(self, now: float, user: str | None = None) -> list[SessionRecord]:
        query = "SELECT * FROM sessions WHERE expires > ?"
        arguments: tuple[Any, ...] = (now,)
        if user is not None:
            query += " AND user = ?"
            arguments += (user,)

        rows = self._run(
            lambda connection: connection.execute(
                query + " ORDER BY user, started", arguments
            ).fetchall()
        )
        return [SessionRecord(*row) for row in rows]

    def add_failure(self, key: str, now: float, window: int) -> tuple[int, float]:
        def add(connection: sqlite3.Connection) -> tuple[int, float]:
            row = connection.execute(
                _ADD_FAILURE, {"key": key, "now": now, "window": window}
            ).fetchone()
            self._sweep(connection, now)
            return int(row[0]), float(row[1])

        return self._run(add)

    def extend_failures(self, key: str, now: float, until: float) -> None:
        self._run(
            lambda connection: connection.execute(
                "UPDATE failures SET resets = max(resets, ?) WHERE key = ?",
                (until, key),
            )
        )

    def get_failures(self, key: str, now: float) -> tuple[int, float]:
        row = self._run(
            lambda connection: connection.execute(
                "SELECT count, resets FROM failures WHERE key = ? AND resets > ?",
                (key, now),
            ).fetchone()
        )
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def clear_failures(self, key: str) -> None:
        self._run(
            lambda connection: connection.execute(
                "DELETE FROM failures WHERE key = ?", (key,)
            )
        )

    def add_share(self, record: ShareRecord) -> None:
        def add(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"INSERT OR REPLACE INTO shares ({_SHARE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.path,
                    record.created_by,
                    record.created,
                    record.expires,
                    record.uses_left,
                    record.note,
                ),
            )
            self._sweep(connection, record.created)

        self._run(add)

    def use_share(self, share_id: str, now: float) -> ShareRecord | None:
        # fetchall() steps the statement to its end, which commits it at once.
        rows = self._run(
            lambda connection: connection.execute(
                _USE_SHARE, {"id": share_id, "now": now}
            ).fetchall()
        )
        return ShareRecord(*rows[0]) if rows else None

    def get_share(self, share_id: str, now: float) -> ShareRecord | None:
        row = self._run(
            lambda connection: connection.execute(
                f"SELECT {_SHARE_COLUMNS} FROM shares WHERE id = ? AND expires > ?",
                (share_id, now),
            ).fetchone()
        )
        return ShareRecord(*row) if row else None

    def list_shares(self, now: float) -> list[ShareRecord]:
        rows = self._run(
            lambda connection: connection.execute(
                f"SELECT {_SHARE_COLUMNS} FROM shares WHERE expires > ? "
                "ORDER BY created, id",
                (now,),
            ).fetchall()
        )
        return [ShareRecord(*row) for row in rows]

    def revoke_share(self, share_id: str) -> bool:
        cursor = self._run(
            lambda connection: connection.execute(
                "DELETE FROM shares WHERE id = ?", (share_id,)
            )
        )
        return cursor.rowcount > 0

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
