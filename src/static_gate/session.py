"""The signed session cookie: what it holds and when it stops being valid.

The cookie is signed with itsdangerous (HMAC-SHA256), not encrypted: it
holds a random session id, the user name, when the session started, when it
was last used and the fingerprint of the user's stored password hash.  Both
the absolute lifetime and the idle timeout are checked against these signed
times, so an old cookie cannot be stretched by the client.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from .keys import SecretKey

_FORMAT = 1

# Why a cookie was not accepted; the gate logs these.
MISSING = "missing"
TAMPERED = "tampered"
EXPIRED = "expired"
IDLE = "idle"


@dataclass(frozen=True)
class Session:
    """One signed-in browser."""

    id: str
    user: str
    issued_at: int
    last_seen: int
    fingerprint: str


@dataclass(frozen=True)
class SessionCheck:
    """What came of reading a cookie: a session, or the reason there is none."""

    session: Session | None
    problem: str | None = None


def make_serializer(keys: Sequence[SecretKey], salt: str) -> URLSafeSerializer:
    """Return an itsdangerous serializer that signs with the first key.

    itsdangerous signs with the last key of its list, so the order is
    reversed here: in static-gate the newest key comes first.
    """
    return URLSafeSerializer(
        [key.value for key in reversed(keys)],
        salt=salt,
        signer_kwargs={"digest_method": hashlib.sha256},
    )


class SessionCodec:
    """Create, sign and check sessions.

    :param keys: signing keys, newest first.
    :param lifetime: seconds a session lasts after sign-in, however active.
    :param idle_timeout: seconds a session lasts without a request.
    """

    def __init__(
        self, keys: Sequence[SecretKey], lifetime: int, idle_timeout: int
    ) -> None:
        self._serializer = make_serializer(keys, "static-gate.session")
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        # Refreshing last_seen on every response would set a cookie on every
        # response; a small fraction of the idle timeout is precise enough.
        self.refresh_after = max(1, min(60, idle_timeout // 10))

    def start(self, user: str, fingerprint: str, now: float) -> Session:
        """Return a new session with a fresh random id."""
        moment = int(now)
        return Session(secrets.token_urlsafe(18), user, moment, moment, fingerprint)

    def dump(self, session: Session) -> str:
        """Return the signed cookie value for *session*."""
        return self._serializer.dumps(
            [
                _FORMAT,
                session.id,
                session.user,
                session.issued_at,
                session.last_seen,
                session.fingerprint,
            ]
        )

    def load(self, value: str | None, now: float) -> SessionCheck:
        """Check a cookie value and return its session if it is still valid."""
        if not value:
            return SessionCheck(None, MISSING)

        try:
            data: Any = self._serializer.loads(value)
        except BadSignature:
            return SessionCheck(None, TAMPERED)

        session = _decode(data)
        if session is None or session.issued_at > now + 60:
            return SessionCheck(None, TAMPERED)

        if now >= session.issued_at + self.lifetime:
            return SessionCheck(None, EXPIRED)

        if now >= session.last_seen + self.idle_timeout:
            return SessionCheck(None, IDLE)

        return SessionCheck(session)

    def needs_refresh(self, session: Session, now: float) -> bool:
        """Tell whether the cookie should be re-issued with a new last-seen time."""
        return now - session.last_seen >= self.refresh_after

    def touch(self, session: Session, now: float) -> Session:
        """Return *session* with last-seen set to *now*."""
        return replace(session, last_seen=int(now))


def _decode(data: Any) -> Session | None:
    if not (isinstance(data, list) and len(data) == 6 and data[0] == _FORMAT):
        return None

    _, session_id, user, issued_at, last_seen, fingerprint = data
    if not all(isinstance(item, str) for item in (session_id, user, fingerprint)):
        return None

    times = (issued_at, last_seen)
    if not all(type(item) is int for item in times) or last_seen < issued_at:
        return None

    return Session(session_id, user, issued_at, last_seen, fingerprint)
