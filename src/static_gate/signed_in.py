"""Who is signed in: the session cookie, checked against everything it names.

A cookie counts only when its signature verifies, its times are within the
lifetime and idle timeout, the account it names still exists with the same
password hash, and the shared store still lists the session as open.  Every
reason a cookie does not count is logged once, for the audit trail.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie

from .session import EXPIRED, IDLE, MISSING, TAMPERED, Session
from .stores import StoreError, session_handle
from .visit import Visit, is_navigation

if TYPE_CHECKING:
    from .gate import Gate

logger = logging.getLogger("static_gate")
audit = logging.getLogger("static_gate.audit")

#: Environ key holding the signed-in user's name for the wrapped app.
USER_KEY = "static_gate.user"
#: Environ key holding the signed-in user's groups (a frozenset).
GROUPS_KEY = "static_gate.groups"


class SessionReader:
    """Read and renew the session cookie of each request for *gate*."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._outage_logged = 0.0

    def read(self, visit: Visit) -> None:
        """Find the signed-in account of *visit*, or note why there is none."""
        now = self.gate.clock()
        check = self.gate.sessions.load(visit.cookies.get(visit.cookie_name), now)
        session = check.session
        if session is None:
            if check.problem != MISSING:
                self._log_bad_cookie(visit, check.problem)
                visit.cookie_update = ""
            return

        account = self.gate.accounts.find(session.user)
        if account is None or account.fingerprint != session.fingerprint:
            # The users file may have changed on disk within the last second.
            account = self.gate.accounts.find(session.user, fresh=True)

        if account is None or account.fingerprint != session.fingerprint:
            reason = "user removed" if account is None else "password changed"
            audit.info(
                "session-ended user=%r client=%s reason=%s",
                session.user,
                visit.client,
                reason,
            )
            self.gate.record_event(
                visit,
                "session-ended",
                user=session.user,
                path=visit.path,
                reason=reason,
            )
            visit.cookie_update = ""
            return

        if not self._is_open(visit, session, now):
            return

        visit.session = session
        visit.account = account
        # Servers log REMOTE_USER from this same environ after the response
        # (gunicorn: %({REMOTE_USER}e)s), so it is set for files too.
        visit.environ["REMOTE_USER"] = account.name
        visit.environ[USER_KEY] = account.name
        visit.environ[GROUPS_KEY] = account.groups
        # Only page navigations count as activity: an open tab that polls, or
        # the images of a page, must not keep a session alive forever.
        if self.gate.sessions.needs_refresh(session, now) and is_navigation(
            visit.environ
        ):
            visit.cookie_update = self.gate.sessions.dump(
                self.gate.sessions.touch(session, now)
            )
            try:
                self.gate.store.touch_session(session_handle(session.id), int(now))
            except StoreError as error:
                logger.warning("last-seen time not stored: %s", error)

    def _is_open(self, visit: Visit, session: Session, now: float) -> bool:
        """Ask the store whether *session* is still open (not signed out)."""
        try:
            is_open = self.gate.store.has_session(session_handle(session.id), now)
        except StoreError as error:
            self.note_outage(error, now)
            if self.gate.config.state.read_during_outage:
                return True

            visit.store_failed = True
            visit.unconfirmed = session
            return False

        if not is_open:
            audit.info(
                "session-revoked user=%r client=%s path=%r",
                session.user,
                visit.client,
                visit.path,
            )
            self.gate.record_event(
                visit, "session-revoked", user=session.user, path=visit.path
            )
            visit.cookie_update = ""

        return is_open

    def note_outage(self, error: StoreError, now: float) -> None:
        """Log that the state store is out of reach, once a minute at most."""
        if now - self._outage_logged >= 60:
            self._outage_logged = now
            logger.error("state store out of reach: %s", error)

    def _log_bad_cookie(self, visit: Visit, problem: str | None) -> None:
        if problem == TAMPERED:
            audit.warning(
                "session-rejected client=%s path=%r reason=bad signature or format",
                visit.client,
                visit.path,
            )
            self.gate.record_event(
                visit,
                "session-rejected",
                path=visit.path,
                reason="bad signature or format",
            )
        elif problem in (EXPIRED, IDLE):
            reason = "lifetime over" if problem == EXPIRED else "idle timeout"
            audit.info(
                "session-expired client=%s path=%r reason=%s",
                visit.client,
                visit.path,
                reason,
            )
            self.gate.record_event(
                visit, "session-expired", path=visit.path, reason=reason
            )

    def set_session_cookie(self, visit: Visit, target: Headers) -> None:
        """Add the ``Set-Cookie`` header that *visit* calls for, if any."""
        cookie = self.session_cookie(visit)
        if cookie is not None:
            target.add("Set-Cookie", cookie)

    def session_cookie(self, visit: Visit) -> str | None:
        """Return the ``Set-Cookie`` value that *visit* calls for, or ``None``."""
        if visit.cookie_update is None:
            return None

        value = visit.cookie_update
        max_age: int | None = 0
        if value:
            # A "keep me signed in" cookie outlives the browser; others end
            # with it.
            session = visit.session
            max_age = None
            if session is not None and session.remember:
                end = session.issued_at + self.gate.sessions.lifetime_of(session)
                max_age = max(0, end - int(self.gate.clock()))

        return dump_cookie(
            visit.cookie_name,
            value,
            max_age=max_age,
            path=visit.cookie_path,
            secure=visit.secure,
            httponly=True,
            samesite="Lax",
        )
