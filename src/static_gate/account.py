"""The signed-in user's account page: open sessions, sign out everywhere.

``<prefix>account`` lists the user's open sessions from the shared store
and offers two buttons: sign out here, and sign out everywhere, which ends
every session of the user on every process and host sharing the store.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from .csrf import CsrfTokens
from .login import form_token, signed_out
from .stores import StoreError, session_handle

if TYPE_CHECKING:
    from .gate import Gate
    from .visit import Visit

audit = logging.getLogger("static_gate.audit")


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


class AccountView:
    """Answer requests for ``<prefix>account``."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.tokens = CsrfTokens(gate.config.session.secret_keys, "everywhere")

    def answer(self, visit: Visit, method: str) -> Response:
        pages = self.gate.pages(visit.base)
        login_page = f"{visit.base}{self.gate.prefix}login"
        session, account = visit.session, visit.account
        if session is None or account is None:
            location = login_page + "?next=" + self.gate.prefix + "account"
            return Response(status=303, headers={"Location": location})

        try:
            if method in ("GET", "HEAD"):
                return self._show(visit)

            if method != "POST":
                response = pages.error(405, "Method not allowed", "Use the buttons.")
                response.headers["Allow"] = "GET, HEAD, POST"
                return response

            return self._sign_out_everywhere(visit)
        except StoreError:
            return pages.unavailable(
                "Your sessions cannot be shown or ended right now. "
                "Please try again soon."
            )

    def _show(self, visit: Visit) -> Response:
        assert visit.session is not None and visit.account is not None
        here = session_handle(visit.session.id)
        records = self.gate.store.list_sessions(self.gate.clock(), visit.account.name)
        sessions = [
            (_when(r.started), _when(r.last_seen), r.client, r.handle == here)
            for r in records
        ]
        return self.gate.pages(visit.base).account(
            visit.account.name,
            visit.account.groups,
            sessions,
            self.gate.login_views.logout_tokens.issue(visit.session.id),
            self.tokens.issue(visit.session.id),
        )

    def _sign_out_everywhere(self, visit: Visit) -> Response:
        assert visit.session is not None and visit.account is not None
        sent = form_token(visit.environ, self.gate.pages(visit.base))
        if not self.tokens.check(sent, visit.session.id):
            audit.warning(
                "logout-refused user=%r client=%s reason=missing or stale form token",
                visit.account.name,
                visit.client,
            )
            self.gate.record_event(
                visit,
                "logout-refused",
                user=visit.account.name,
                reason="missing or stale form token",
                status=400,
            )
            return self.gate.pages(visit.base).error(
                400, "Form expired", "This form has expired; open the page again."
            )

        ended = self.gate.store.remove_user_sessions(visit.account.name)
        visit.cookie_update = ""
        audit.info(
            "logout-everywhere user=%r client=%s sessions=%d",
            visit.account.name,
            visit.client,
            ended,
        )
        self.gate.record_event(
            visit,
            "logout-everywhere",
            user=visit.account.name,
            reason=f"{ended} session(s) ended",
            status=303,
        )
        return signed_out(f"{visit.base}{self.gate.prefix}login")
