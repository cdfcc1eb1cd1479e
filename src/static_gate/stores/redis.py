"""A store in Redis, for several hosts behind one load balancer.

Needs the ``redis`` package (``pip install 'static-gate[redis]'``).  Every
key expires by itself when its session, its failure count or its share link
would, so nothing needs cleaning.  Keys start with ``static-gate:``; give each site
its own database number (``redis://host:6379/3``) when several share one
server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from . import SessionRecord, ShareRecord, StoreError

T = TypeVar("T")

_PREFIX = "static-gate:"

# Seconds to wait for Redis before the request fails closed.
_TIMEOUT = 1.0

# Count one failure; the first one starts the window.  Returns the count and
# the milliseconds left until it resets.
_ADD_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"""

_EXTEND_FAILURES = """
local left = redis.call('PTTL', KEYS[1])
if left >= 0 and left < tonumber(ARGV[1]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return left
"""

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
end
return 0
"""


# Open a share link once, atomically: refuse it when expired by the caller's
# clock or when its uses are spent, else spend one use if it has a limit.
# Returns the link's fields afterwards, or nil.
_USE_SHARE = """
local expires = redis.call('HGET', KEYS[1], 'expires')
if not expires or tonumber(expires) <= tonumber(ARGV[1]) then return false end
local left = redis.call('HGET', KEYS[1], 'uses_left')
if left then
    if tonumber(left) <= 0 then return false end
    redis.call('HINCRBY', KEYS[1], 'uses_left', -1)
end
return redis.call('HGETALL', KEYS[1])
"""


class RedisStore:
    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise StoreError(
                "a redis:// store needs the redis package: "
                "pip install 'static-gate[redis]'"
            ) from None

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=_TIMEOUT,
            socket_connect_timeout=_TIMEOUT,
            health_check_interval=30,
            decode_responses=True,
        )
        address = url.split("@")[-1]  # never show a password from the URL
        self.description = f"Redis at {address}"
        self._add_failure = self.client.register_script(_ADD_FAILURE)
        self._extend_failures = self.client.register_script(_EXTEND_FAILURES)
        self._touch = self.client.register_script(_TOUCH)
        self._use_share = self.client.register_script(_USE_SHARE)

    def _run(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except self._errors as error:
            raise StoreError(f"{self.description}: {error}") from None

    def check(self) -> None:
        self._run(self.client.ping)

    def add_session(self, record: SessionRecord) -> None:
        session_key = f"{_PREFIX}s:{record.handle}"
        user_key = f"{_PREFIX}u:{record.user}"
        pipe = self.client.pipeline()
        pipe.hset(
            session_key,
            mapping={
                "user": record.user,
                "client": record.client,
                "started": record.started,
                "last_seen": record.last_seen,
                "expires": record.expires,
            },
        )
        pipe.expireat(session_key, record.expires)
        pipe.sadd(user_key, record.handle)
        pipe.expireat(user_key, record.expires, gt=True)
        pipe.expireat(user_key, record.expires, nx=True)
        self._run(pipe.execute)

    def has_session(self, handle: str, now: float) -> bool:
        return bool(self._run(lambda: self.client.exists(f"{_PREFIX}s:{handle}")))

    def touch_session(self, handle: str, last_seen: int) -> None:
        self._run(lambda: self._touch(keys=[f"{_PREFIX}s:{handle}"], args=[last_seen]))

    def remove_session(self, handle: str) -> bool:
        session_key = f"{_PREFIX}s:{handle}"
        user = self._run(lambda: self.client.hget(session_key, "user"))
        pipe = self.client.pipeline()
        pipe.delete(session_key)
        if user is not None:
            pipe.srem(f"{_PREFIX}u:{_text(user)}", handle)
        results = self._run(pipe.execute)
        return bool(results[0])

    def remove_user_sessions(self, user: str) -> int:
        user_key = f"{_PREFIX}u:{user}"
        handles = self._run(lambda: self.client.smembers(user_key))
        if not handles:
            return 0

        keys = [f"{_PREFIX}s:{_text(handle)}" for handle in handles]
        removed = self._run(lambda: self.client.delete(*keys))
        self._run(lambda: self.client.delete(user_key))
        return int(removed)

    def list_sessions(self, now: float, user: str | None = None) -> list[SessionRecord]:
        if user is not None:
            handles = self._run(lambda: self.client.smembers(f"{_PREFIX}u:{user}"))
            keys = [f"{_PREFIX}s:{_text(handle)}" for handle in handles]
        else:
            keys = self._run(
                lambda: list(self.client.scan_iter(f"{_PREFIX}s:*", count=500))
            )

        pipe = self.client.pipeline()
        for key in keys:
            pipe.hgetall(key)
        records = [
            _record(key[len(_PREFIX) + 2 :], fields)
            for key, fields in zip(keys, self._run(pipe.execute), strict=True)
            if fields
        ]
        return sorted(records, key=lambda record: (record.user, record.started))

    def add_failure(self, key: str, now: float, window: int) -> tuple[int, float]:
        count, left = self._run(
            lambda: self._add_failure(keys=[f"{_PREFIX}f:{key}"], args=[window * 1000])
        )
        return int(count), now + max(int(left), 0) / 1000

    def extend_failures(self, key: str, now: float, until: float) -> None:
        # Redis keeps time itself: what matters is how long is left.
        left = max(1, int((until - now) * 1000))
        self._run(
            lambda: self._extend_failures(keys=[f"{_PREFIX}f:{key}"], args=[left])
        )

    def get_failures(self, key: str, now: float) -> tuple[int, float]:
        pipe = self.client.pipeline()
        pipe.get(f"{_PREFIX}f:{key}")
        pipe.pttl(f"{_PREFIX}f:{key}")
        count, left = self._run(pipe.execute)
        if count is None or int(left) <= 0:
            return 0, 0.0

        return int(count), now + int(left) / 1000

    def clear_failures(self, key: str) -> None:
        self._run(lambda: self.client.delete(f"{_PREFIX}f:{key}"))

    def add_share(self, record: ShareRecord) -> None:
        key = f"{_PREFIX}share:{record.id}"
        pipe = self.client.pipeline()
        pipe.delete(key)
        pipe.hset(
            key,
            mapping={
                "path": record.path,
                "created_by": record.created_by,
                "created": record.created,
                "expires": record.expires,
                "note": record.note,
            },
        )
        # No field means no limit.
        if record.uses_left is not None:
            pipe.hset(key, "uses_left", record.uses_left)
        pipe.expireat(key, record.expires)
        self._run(pipe.execute)

    def use_share(self, share_id: str, now: float) -> ShareRecord | None:
        reply = self._run(
            lambda: self._use_share(keys=[f"{_PREFIX}share:{share_id}"], args=[now])
        )
        if not reply:
            return None

        return _share(share_id, dict(zip(reply[::2], reply[1::2], strict=True)))

    def get_share(self, share_id: str, now: float) -> ShareRecord | None:
        fields = self._run(lambda: self.client.hgetall(f"{_PREFIX}share:{share_id}"))
        if not fields:
            return None

        record = _share(share_id, fields)
        return record if record.expires > now else None

    def list_shares(self, now: float) -> list[ShareRecord]:
        keys = self._run(
            lambda: list(self.client.scan_iter(f"{_PREFIX}share:*", count=500))
        )
        pipe = self.client.pipeline()
        for key in keys:
            pipe.hgetall(key)
        records = [
            _share(_text(key)[len(_PREFIX) + 6 :], fields)
            for key, fields in zip(keys, self._run(pipe.execute), strict=True)
            if fields
        ]
        return sorted(
            (record for record in records if record.expires > now),
            key=lambda record: (record.created, record.id),
        )

    def revoke_share(self, share_id: str) -> bool:
        removed = self._run(lambda: self.client.delete(f"{_PREFIX}share:{share_id}"))
        return bool(removed)

    def close(self) -> None:
        self.client.close()


def _text(value: str | bytes) -> str:
    # decode_responses makes every reply a str; the type hints allow bytes.
    return value.decode() if isinstance(value, bytes) else value


def _record(handle: str, fields: dict[str, str]) -> SessionRecord:
    def text(name: str) -> str:
        return fields.get(name, "")

    def number(name: str) -> int:
        return int(fields.get(name, "0"))

    return SessionRecord(
        handle,
        text("user"),
        text("client"),
        number("started"),
        number("last_seen"),
        number("expires"),
    )


def _share(share_id: str, reply: Mapping[str | bytes, str | bytes]) -> ShareRecord:
    fields = {_text(name): _text(value) for name, value in reply.items()}
    uses_left = fields.get("uses_left")
    return ShareRecord(
        share_id,
        fields.get("path", ""),
        fields.get("created_by", ""),
        int(fields.get("created", "0")),
        int(fields.get("expires", "0")),
        None if uses_left is None else int(uses_left),
        fields.get("note", ""),
    )
