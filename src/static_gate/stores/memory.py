"""A store in this process's memory: for tests and single-process servers.

Nothing is shared with other processes: with several workers, each one
counts failures and knows sessions on its own, so a logout in one worker
does not end the session in another.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from . import SessionRecord, ShareRecord

# Expired entries are swept at most this often, in seconds.
_SWEEP_INTERVAL = 60.0


class MemoryStore:
    description = "memory (this process only; for tests and one-process servers)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._shares: dict[str, ShareRecord] = {}
        self._swept = 0.0

    def check(self) -> None:
        return None

    def _sweep(self, now: float) -> None:
        if now - self._swept < _SWEEP_INTERVAL:
            return

        self._swept = now
        self._sessions = {
            handle: record
            for handle, record in self._sessions.items()
            if record.expires > now
        }
        self._failures = {
            key: value for key, value in self._failures.items() if value[1] > now
        }
        self._shares = {
            share_id: record
            for share_id, record in self._shares.items()
            if record.expires > now
        }

    def add_session(self, record: SessionRecord) -> None:
        with self._lock:
            self._sweep(record.started)
            self._sessions[record.handle] = record

    def has_session(self, handle: str, now: float) -> bool:
        record = self._sessions.get(handle)
        return record is not None and record.expires > now

    def touch_session(self, handle: str, last_seen: int) -> None:
        with self._lock:
            record = self._sessions.get(handle)
            if record is not None:
                self._sessions[handle] = SessionRecord(
                    record.handle,
                    record.user,
                    record.client,
                    record.started,
                    last_seen,
                    record.expires,
                )

    def remove_session(self, handle: str) -> bool:
        with self._lock:
            return self._sessions.pop(handle, None) is not None

    def remove_user_sessions(self, user: str) -> int:
        with self._lock:
            ended = [h for h, r in self._sessions.items() if r.user == user]
            for handle in ended:
                del self._sessions[handle]
            return len(ended)

    def list_sessions(self, now: float, user: str | None = None) -> list[SessionRecord]:
        return sorted(
            (
                record
                for record in list(self._sessions.values())
                if record.expires > now and (user is None or record.user == user)
            ),
            key=lambda record: (record.user, record.started),
        )

    def add_failure(self, key: str, now: float, window: int) -> tuple[int, float]:
        with self._lock:
            self._sweep(now)
            count, resets = self._failures.get(key, (0, 0.0))
            if resets <= now:
                count, resets = 0, now + window
            self._failures[key] = (count + 1, resets)
            return count + 1, resets

    def extend_failures(self, key: str, now: float, until: float) -> None:
        with self._lock:
            count, resets = self._failures.get(key, (0, 0.0))
            if count and until > resets:
                self._failures[key] = (count, until)

    def get_failures(self, key: str, now: float) -> tuple[int, float]:
        count, resets = self._failures.get(key, (0, 0.0))
        return (count, resets) if resets > now else (0, 0.0)

    def clear_failures(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def add_share(self, record: ShareRecord) -> None:
        with self._lock:
            self._sweep(record.created)
            self._shares[record.id] = record

    def use_share(self, share_id: str, now: float) -> ShareRecord | None:
        with self._lock:
            record = self._shares.get(share_id)
            if record is None or record.expires <= now or record.uses_left == 0:
                return None

            if record.uses_left is not None:
                record = replace(record, uses_left=record.uses_left - 1)
                self._shares[share_id] = record

            return record

    def get_share(self, share_id: str, now: float) -> ShareRecord | None:
        record = self._shares.get(share_id)
        return record if record is not None and record.expires > now else None

    def list_shares(self, now: float) -> list[ShareRecord]:
        return sorted(
            (record for record in list(self._shares.values()) if record.expires > now),
            key=lambda record: (record.created, record.id),
        )

    def revoke_share(self, share_id: str) -> bool:
        with self._lock:
            return self._shares.pop(share_id, None) is not None

    def close(self) -> None:
        return None
