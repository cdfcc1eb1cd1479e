"""The sign-in and sign-out pages under the gate's reserved prefix.

Both forms carry a CSRF token.  Before sign-in, the token is bound to a
random nonce in a cookie scoped to the gate's pages; after it, to the
session id.  Sign-in always issues a new session id, so a cookie planted in
the browser beforehand never becomes the signed-in session.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Request, Response

from .csrf import TOKEN_MAX_AGE, CsrfTokens, is_nonce, new_nonce
from .hygiene import MAX_FORM_BYTES
from .paths import quote_path, safe_redirect_target, with_query
from .stores import SessionRecord, StoreError, session_handle
from .throttle import CheckBusy, throttle_keys, user_key

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .gate import Gate
    from .pages import Pages
    from .visit import Visit

logger = logging.getLogger("static_gate")
audit = logging.getLogger("static_gate.audit")

#: Longest user name and password read from the form.
MAX_USER_LENGTH = 64
MAX_PASSWORD_LENGTH = 1024


class LoginViews:
    """Answer requests for ``<prefix>login`` and ``<prefix>logout``."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        keys = gate.config.session.secret_keys
        self.login_tokens = CsrfTokens(keys, "login")
        self.logout_tokens = CsrfTokens(keys, "logout")

    def redirect_to_login(self, visit: Visit) -> Response:
        """Send the visitor to the login page, remembering where they were going."""
        target = with_query(
            quote_path(visit.path), visit.environ.get("QUERY_STRING", "")
        )

        location = f"{visit.base}{self.gate.prefix}login?next={quote(target, safe='')}"
        return Response(status=303, headers={"Location": location})

    # -- sign in ----------------------------------------------------------

    def login(self, visit: Visit, method: str) -> Response:
        request = Request(visit.environ)
        if method in ("GET", "HEAD"):
            next_path = request.args.get("next", "/")
            if visit.account is not None:
                return self._go_to(visit, next_path)

            notice = "You are signed out." if "signed_out" in request.args else ""
            return self._form(visit, 200, next_path, notice=notice)

        if method != "POST":
            response = self.gate.pages(visit.base).error(
                405, "Method not allowed", "Use the sign-in form."
            )
            response.headers["Allow"] = "GET, HEAD, POST"
            return response

        form = read_form(visit.environ, self.gate.pages(visit.base))
        if isinstance(form, Response):
            return form

        next_path = form.get("next", "/")
        nonce = visit.cookies.get(self._nonce_cookie(visit))
        if not self.login_tokens.check(form.get("csrf_token"), nonce):
            audit.warning(
                "login-refused client=%s reason=missing or stale form token",
                visit.client,
            )
            self.gate.record_event(
                visit, "login-refused", reason="missing or stale form token", status=400
            )
            return self._form(
                visit,
                400,
                next_path,
                error="This form has expired. Please sign in again.",
            )

        user = form.get("user", "").strip()
        password = form.get("password", "")
        try:
            remember = form.get("remember") == "yes"
            return self._check_password(visit, user, password, next_path, remember)
        except StoreError as error:
            audit.warning(
                "login-unavailable user=%r client=%s reason=state store out of reach",
                user[:MAX_USER_LENGTH],
                visit.client,
            )
            self.gate.record_event(
                visit,
                "login-unavailable",
                user=user[:MAX_USER_LENGTH],
                reason="state store out of reach",
                status=503,
            )
            logger.error("sign-in refused, state store out of reach: %s", error)
            return self.gate.pages(visit.base).unavailable(
                "Signing in is not possible right now. Please try again soon."
            )

    def _check_password(
        self,
        visit: Visit,
        user: str,
        password: str,
        next_path: str,
        remember: bool = False,
    ) -> Response:
        """Throttle, verify and open a session; store errors propagate."""
        gate = self.gate
        now = gate.clock()
        shared = gate.accounts.shared
        name = user or (shared.name if shared else "")
        keys = throttle_keys(name[:MAX_USER_LENGTH], visit.client)
        retry_after = gate.throttle.retry_after(keys, now)
        if retry_after is not None:
            gate.throttle.add_failure(keys, now)
            audit.warning(
                "login-throttled user=%r client=%s retry_after=%d",
                user[:MAX_USER_LENGTH],
                visit.client,
                retry_after,
            )
            gate.record_event(
                visit,
                "login-throttled",
                user=user[:MAX_USER_LENGTH],
                reason=f"retry after {retry_after} s",
                status=429,
            )
            return gate.pages(visit.base).throttled(retry_after)

        account = None
        if len(user) <= MAX_USER_LENGTH and len(password) <= MAX_PASSWORD_LENGTH:
            try:
                account = gate.check_slots.run(
                    lambda: gate.accounts.authenticate(user, password)
                )
            except CheckBusy:
                audit.warning(
                    "login-busy user=%r client=%s reason=too many checks at once",
                    user[:MAX_USER_LENGTH],
                    visit.client,
                )
                gate.record_event(
                    visit,
                    "login-busy",
                    user=user[:MAX_USER_LENGTH],
                    reason="too many checks at once",
                    status=503,
                )
                return gate.pages(visit.base).unavailable(
                    "Too many people are signing in. Please try again in a moment.",
                    retry_after=5,
                )

        if account is None:
            gate.throttle.add_failure(keys, now)
            audit.warning(
                "login-failed user=%r client=%s reason=wrong user name or password",
                user[:MAX_USER_LENGTH],
                visit.client,
            )
            gate.record_event(
                visit,
                "login-failed",
                user=user[:MAX_USER_LENGTH],
                reason="wrong user name or password",
                status=401,
            )
            error = (
                "Wrong user name or password."
                if gate.accounts.has_users
                else "Wrong password."
            )
            return self._form(visit, 401, next_path, error=error, user=user)

        gate.throttle.clear(user_key(name))
        session = gate.sessions.start(account.name, account.fingerprint, now, remember)
        gate.store.add_session(
            SessionRecord(
                session_handle(session.id),
                account.name,
                visit.client,
                session.issued_at,
                session.last_seen,
                session.issued_at + gate.sessions.lifetime_of(session),
            )
        )
        visit.session = session
        visit.account = account
        visit.cookie_update = gate.sessions.dump(session)
        audit.info("login user=%r client=%s", account.name, visit.client)
        gate.record_event(visit, "login", user=account.name, status=303)
        response = self._go_to(visit, next_path)
        self._clear_nonce(visit, response)
        return response

    def _go_to(self, visit: Visit, next_path: str) -> Response:
        target = safe_redirect_target(next_path, self.gate.prefix)
        return Response(status=303, headers={"Location": visit.base + target})

    def _form(
        self,
        visit: Visit,
        status: int,
        next_path: str,
        error: str = "",
        notice: str = "",
        user: str = "",
    ) -> Response:
        nonce_cookie = self._nonce_cookie(visit)
        nonce = visit.cookies.get(nonce_cookie, "")
        fresh = not is_nonce(nonce)
        if fresh:
            nonce = new_nonce()

        accounts = self.gate.accounts
        response = self.gate.pages(visit.base).login(
            status,
            self.login_tokens.issue(nonce),
            safe_redirect_target(next_path, self.gate.prefix),
            ask_user=accounts.has_users,
            user_optional=accounts.has_users and accounts.has_shared_password,
            offer_remember=self.gate.sessions.remember_lifetime is not None,
            error=error,
            notice=notice,
            user=user[:MAX_USER_LENGTH],
        )
        if fresh:
            response.headers.add(
                "Set-Cookie",
                dump_cookie(
                    nonce_cookie,
                    nonce,
                    max_age=TOKEN_MAX_AGE,
                    path=visit.base + self.gate.prefix,
                    secure=visit.secure,
                    httponly=True,
                    samesite="Lax",
                ),
            )

        return response

    def _nonce_cookie(self, visit: Visit) -> str:
        # Scoped to the gate's pages, so the __Host- prefix (which needs
        # Path=/) cannot be used; __Secure- still keeps http pages off it.
        name = self.gate.config.session.cookie_name + "_login"
        return "__Secure-" + name if visit.secure else name

    def _clear_nonce(self, visit: Visit, response: Response) -> None:
        response.headers.add(
            "Set-Cookie",
            dump_cookie(
                self._nonce_cookie(visit),
                "",
                max_age=0,
                path=visit.base + self.gate.prefix,
                secure=visit.secure,
                httponly=True,
                samesite="Lax",
            ),
        )

    # -- sign out ---------------------------------------------------------

    def logout(self, visit: Visit, method: str) -> Response:
        login_page = f"{visit.base}{self.gate.prefix}login"
        # During a store outage the session is signed but unconfirmed; it
        # must still be possible to end it here.
        session = visit.session or visit.unconfirmed
        if session is None:
            return Response(status=303, headers={"Location": login_page})

        if method in ("GET", "HEAD"):
            token = self.logout_tokens.issue(session.id)
            return self.gate.pages(visit.base).logout_confirm(token, session.user)

        if method != "POST":
            response = self.gate.pages(visit.base).error(
                405, "Method not allowed", "Use the sign-out button."
            )
            response.headers["Allow"] = "GET, HEAD, POST"
            return response

        sent = form_token(visit.environ, self.gate.pages(visit.base))
        if not self.logout_tokens.check(sent, session.id):
            audit.warning(
                "logout-refused user=%r client=%s reason=missing or stale form token",
                session.user,
                visit.client,
            )
            self.gate.record_event(
                visit,
                "logout-refused",
                user=session.user,
                reason="missing or stale form token",
                status=400,
            )
            return self.gate.pages(visit.base).error(
                400,
                "Form expired",
                "This form has expired; open the sign-out page again.",
            )

        visit.cookie_update = ""
        try:
            self.gate.store.remove_session(session_handle(session.id))
        except StoreError as error:
            # The cookie goes, but a copy of it would live on: say so.
            logger.error("logout not recorded, state store out of reach: %s", error)
            audit.warning(
                "logout-unrecorded user=%r client=%s reason=state store out of reach",
                session.user,
                visit.client,
            )
            self.gate.record_event(
                visit,
                "logout-unrecorded",
                user=session.user,
                reason="state store out of reach",
                status=503,
            )
            return self.gate.pages(visit.base).unavailable(
                "You are signed out in this browser, but the server could not "
                "record it. Please sign out again in a moment."
            )

        audit.info("logout user=%r client=%s", session.user, visit.client)
        self.gate.record_event(visit, "logout", user=session.user, status=303)
        return signed_out(login_page)


def read_form(environ: WSGIEnvironment, pages: Pages) -> MultiDict[str, str] | Response:
    """Read a gate form's fields, or return the refusal when that is unsafe.

    A body without a valid ``Content-Length`` (a chunked request, passed on
    by some servers) is refused with 411: werkzeug would silently cut it at
    the limit instead of reporting it as too large.  Past
    :data:`MAX_FORM_BYTES` the answer is 413.
    """
    request = Request(environ)
    request.max_content_length = MAX_FORM_BYTES
    request.max_form_memory_size = MAX_FORM_BYTES
    request.max_form_parts = 8
    length = str(environ.get("CONTENT_LENGTH") or "")
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", ""))
    if chunked or not length.isdigit():
        return pages.error(411, "Length required", "Send the form with its length.")

    too_large = pages.error(413, "Form too large", "The form sent too much data.")
    if int(length) > MAX_FORM_BYTES:
        return too_large

    try:
        return request.form
    except RequestEntityTooLarge:
        return too_large


def form_token(environ: WSGIEnvironment, pages: Pages) -> str | None:
    """The ``csrf_token`` field of a form, or ``None`` if it cannot be read."""
    form = read_form(environ, pages)
    return None if isinstance(form, Response) else form.get("csrf_token")


def signed_out(login_page: str) -> Response:
    """The answer after a sign-out: back to the login page, cache cleared."""
    response = Response(status=303, headers={"Location": login_page + "?signed_out"})
    response.headers["Clear-Site-Data"] = '"cache"'
    return response
