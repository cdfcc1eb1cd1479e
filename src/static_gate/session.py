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
from functools import lru_cache

from itsdangerous import BadSignature, Signer, want_bytes

from .keys import SecretKey

# The signed payload is "1|id|user|issued|last seen|fingerprint[|r]": plain
# text, because decoding JSON and zlib cost more than the rest of a request.
# No field can hold "|": ids and fingerprints are URL-safe base64, and user
# names are restricted (see config.is_user_name).
_FORMAT = "1"

#: How many verified cookie values each process remembers.
VERIFIED_CACHE_SIZE = 4096
_SEPARATOR = "|"
# A seventh field marks a "keep me signed in" session.
_REMEMBER = "r"

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
    #: Opened with "keep me signed in": the longer lifetimes apply.
    remember: bool = False


@dataclass(frozen=True)
class SessionCheck:
    """What came of reading a cookie: a session, or the reason there is none."""

    session: Session | None
    problem: str | None = None


class _Signer(Signer):
    """An itsdangerous signer that derives each key once, not on every call.

    Deriving costs an HMAC per key and request; the keys never change while
    the gate runs.
    """

    def __init__(self, keys: Sequence[bytes], salt: str) -> None:
        super().__init__(
            list(keys), salt=salt, key_derivation="hmac", digest_method=hashlib.sha256
        )
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        key = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived.get(key)
        if derived is None:
            derived = self._derived[key] = super().derive_key(key)

        return derived


def make_signer(keys: Sequence[SecretKey], salt: str) -> Signer:
    """Return an itsdangerous signer (HMAC-SHA256) that signs with the first key.

    itsdangerous signs with the last key of its list, so the order is
    reversed here: in static-gate the newest key comes first.
    """
    return _Signer([key.value for key in reversed(keys)], salt)


class SessionCodec:
    """Create, sign and check sessions.

    :param keys: signing keys, newest first.
    :param lifetime: seconds a session lasts after sign-in, however active.
    :param idle_timeout: seconds a session lasts without a page navigation.
    :param remember_lifetime: the lifetime of a "keep me signed in" session;
        ``None`` when that choice is not offered.
    :param remember_idle_timeout: its idle timeout.
    """

    def __init__(
        self,
        keys: Sequence[SecretKey],
        lifetime: int,
        idle_timeout: int,
        remember_lifetime: int | None = None,
        remember_idle_timeout: int | None = None,
    ) -> None:
        self._signer = make_signer(keys, "static-gate.session")
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self.remember_lifetime = remember_lifetime
        self.remember_idle_timeout = remember_idle_timeout or remember_lifetime
        # A browser sends the same cookie on every request until it is
        # refreshed: remember the values whose signature already verified.
        # Only the signature check is cached; the times are checked anew.
        self._verified = lru_cache(maxsize=VERIFIED_CACHE_SIZE)(self._verify)
        # Refreshing last_seen on every response would set a cookie on every
        # response; a small fraction of the idle timeout is precise enough.
        self.refresh_after = max(1, min(60, idle_timeout // 10))

    def start(
        self, user: str, fingerprint: str, now: float, remember: bool = False
    ) -> Session:
        """Return a new session with a fresh random id.

        :param remember: "keep me signed in"; ignored when not offered.
        """
        moment = int(now)
        remember = remember and self.remember_lifetime is not None
        return Session(
            secrets.token_urlsafe(18), user, moment, moment, fingerprint, remember
        )

    def lifetime_of(self, session: Session) -> int:
        """Seconds *session* lasts after sign-in."""
        if session.remember and self.remember_lifetime is not None:
            return self.remember_lifetime
        return self.lifetime

    def idle_timeout_of(self, session: Session) -> int:
        """Seconds *session* lasts without a page navigation."""
        if session.remember and self.remember_idle_timeout is not None:
            return self.remember_idle_timeout
        return self.idle_timeout

    def dump(self, session: Session) -> str:
        """Return the signed cookie value for *session*."""
        payload = _SEPARATOR.join(
            (
                _FORMAT,
                session.id,
                session.user,
                str(session.issued_at),
                str(session.last_seen),
                session.fingerprint,
            )
        )
        if session.remember:
            payload += _SEPARATOR + _REMEMBER
        return self._signer.sign(payload).decode("ascii")

    def load(self, value: str | None, now: float) -> SessionCheck:
        """Check a cookie value and return its session if it is still valid."""
        if not value:
            return SessionCheck(None, MISSING)

        session = self._verified(value)
        if session is None or session.issued_at > now + 60:
            return SessionCheck(None, TAMPERED)

        if now >= session.issued_at + self.lifetime_of(session):
            return SessionCheck(None, EXPIRED)

        if now >= session.last_seen + self.idle_timeout_of(session):
            return SessionCheck(None, IDLE)

        return SessionCheck(session)

    def _verify(self, value: str) -> Session | None:
        """Check the signature and the fields; no clock is involved."""
        try:
            payload = self._signer.unsign(value).decode("ascii")
        except (BadSignature, UnicodeError):
            return None

        return _decode(payload)

    def needs_refresh(self, session: Session, now: float) -> bool:
        """Tell whether the cookie should be re-issued with a new last-seen time."""
        return now - session.last_seen >= self.refresh_after

    def touch(self, session: Session, now: float) -> Session:
        """Return *session* with last-seen set to *now*."""
        return replace(session, last_seen=int(now))


def _decode(payload: str) -> Session | None:
    fields = payload.split(_SEPARATOR)
    remember = len(fields) == 7 and fields[6] == _REMEMBER
    if remember:
        fields.pop()

    if len(fields) != 6 or fields[0] != _FORMAT:
        return None

    _, session_id, user, issued_text, seen_text, fingerprint = fields
    if not (session_id and user and fingerprint):
        return None

    if not (_is_number(issued_text) and _is_number(seen_text)):
        return None

    issued_at, last_seen = int(issued_text), int(seen_text)
    if last_seen < issued_at:
        return None

    return Session(session_id, user, issued_at, last_seen, fingerprint, remember)


def _is_number(text: str) -> bool:
    # isdigit() alone would take other scripts' digits, such as "١٢".
    return text.isascii() and text.isdigit() and len(text) <= 12
