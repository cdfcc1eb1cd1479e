"""Shared state: open sessions, failed logins and share links.

A signed cookie cannot be taken back, and a counter kept in one process does
not stop guessing spread over several.  A :class:`Store` holds both for every
worker process and host that shares it, and the share links as well, so that
a revoked link stops working everywhere at once.  Three kinds exist, chosen by
``[state] store``: SQLite (the default, one host), Redis (several hosts) and
memory (tests and single-process use only).

Sessions are stored under a *handle*, a digest of the session id, so that
neither the store nor anything that lists it holds a value from a cookie.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import StaticGateError


class StoreError(StaticGateError):
    """The state store cannot be reached or written."""


@dataclass(frozen=True)
class SessionRecord:
    """What the store knows about one open session."""

    handle: str
    user: str
    client: str
    started: int
    last_seen: int
    expires: int


@dataclass(frozen=True)
class ShareRecord:
    """What the store knows about one share link.

    The link itself is never stored: it is the id signed with the gate's
    key (see :mod:`static_gate.shares`), so the id alone opens nothing.
    """

    id: str
    #: The canonical path shared; it ends with ``/`` for a folder.
    path: str
    #: The user who made the link, or ``@`` and a login name for the shell.
    created_by: str
    created: int
    expires: int
    #: How many more times the link may be opened; ``None`` for no limit.
    uses_left: int | None = None
    note: str = ""


def session_handle(session_id: str) -> str:
    """Return the name a session is stored and listed under."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:24]


class Store(Protocol):
    """What the gate needs from a state store.

    Every method may raise :class:`StoreError` when the store is out of
    reach; the gate then fails closed.  Times are seconds since the epoch,
    passed in by the caller.
    """

    #: Words for the start-up log line and ``static-gate check``.
    description: str

    def check(self) -> None:
        """Make sure the store can be read and written; raise StoreError."""

    def add_session(self, record: SessionRecord) -> None:
        """Remember an open session until its ``expires`` time."""

    def has_session(self, handle: str, now: float) -> bool:
        """Tell whether the session is open: not ended and not expired."""

    def touch_session(self, handle: str, last_seen: int) -> None:
        """Record a later last-seen time for an open session."""

    def remove_session(self, handle: str) -> bool:
        """End one session; return whether it was open."""

    def remove_user_sessions(self, user: str) -> int:
        """End every session of *user*; return how many were open."""

    def list_sessions(self, now: float, user: str | None = None) -> list[SessionRecord]:
        """Return the open sessions, of one user or of everyone."""

    def add_failure(self, key: str, now: float, window: int) -> tuple[int, float]:
        """Count one failure for *key*; return the count and when it resets.

        The count starts at 1 and resets *window* seconds after the first
        failure, unless :meth:`extend_failures` pushed that time further.
        """

    def extend_failures(self, key: str, now: float, until: float) -> None:
        """Keep the count for *key* until *until*, if that is later."""

    def get_failures(self, key: str, now: float) -> tuple[int, float]:
        """Return the current count for *key* and when it resets (0 if none)."""

    def clear_failures(self, key: str) -> None:
        """Forget the failures counted for *key*."""

    def add_share(self, record: ShareRecord) -> None:
        """Remember a share link until its ``expires`` time."""

    def use_share(self, share_id: str, now: float) -> ShareRecord | None:
        """Open a share link once; return it as it is afterwards, or ``None``.

        In one atomic step: the link must exist, not be expired and have a
        use left; a limited link then has one use fewer.  Concurrent callers
        never spend more uses than the link had.
        """

    def get_share(self, share_id: str, now: float) -> ShareRecord | None:
        """Return the share link if it is live: not revoked and not expired.

        A link whose uses are spent is still live: the browsers that opened
        it keep reading until it expires or is revoked.
        """

    def list_shares(self, now: float) -> list[ShareRecord]:
        """Return the live share links, oldest first."""

    def revoke_share(self, share_id: str) -> bool:
        """Forget a share link; return whether it was stored."""

    def close(self) -> None:
        """Release connections."""


def open_store(url: str, state_folder: Path, create: bool = True) -> Store:
    """Return the store that ``[state] store`` names.

    :param url: ``"sqlite"``, ``"sqlite:PATH"``, ``"memory"``, or a
        ``redis://`` or ``rediss://`` URL.
    :param state_folder: where the default SQLite file goes.
    :param create: whether a missing SQLite file may be created.
    :raises StoreError: an unknown kind, or the redis package is missing.
    """
    if url == "memory":
        from .memory import MemoryStore

        return MemoryStore()

    if url == "sqlite" or url.startswith("sqlite:"):
        from .sqlite import SqliteStore

        path = url[len("sqlite:") :] if url.startswith("sqlite:") else ""
        filename = state_folder / (path or "static-gate.sqlite3")
        return SqliteStore(filename, create)

    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(url)

    raise StoreError(
        f'unknown store {url!r}; use "sqlite", "sqlite:PATH", "memory" '
        'or a "redis://" URL'
    )


__all__ = [
    "SessionRecord",
    "ShareRecord",
    "Store",
    "StoreError",
    "open_store",
    "session_handle",
]
