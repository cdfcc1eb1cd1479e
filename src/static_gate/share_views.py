"""Share links at the gate: reading their cookie, opening them, making them.

``<prefix>share/<token>`` shows a page with an Open button and opens the
link only on its POST, so that mail scanners and chat previews, which fetch
every link they see, spend no use.  Opening spends one use, sets a cookie
for the shared path and sends the browser there with a 303, so the token
leaves the address bar.  ``<prefix>shares`` is the form on which members of
``[share] creators`` make links.  What a link opens is decided in
:mod:`.shares`; this module answers the requests.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from werkzeug.http import dump_cookie
from werkzeug.wrappers import Request, Response

from .csrf import CsrfTokens
from .login import read_form
from .paths import quote_path
from .shares import (
    InvalidShare,
    check_note,
    check_share_path,
    check_share_target,
    covers,
    dump_share_cookie,
    format_duration,
    is_shell_share,
    load_share_cookie,
    make_share,
    make_token,
    parse_expires,
    parse_uses,
    read_token,
    share_cookie_name,
    share_cookie_path,
    share_cookie_until,
    share_url,
)
from .stores import ShareRecord, StoreError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .credentials import Account
    from .gate import Gate
    from .visit import Visit

audit = logging.getLogger("static_gate.audit")

#: :attr:`Visit.share_problem` when the store could not say whether the
#: link of a share cookie is live.
STORE = "store"
#: :attr:`Visit.share_problem` when the link of a share cookie has ended.
GONE = "gone"

_FIELDS = ("path", "expires", "uses", "note")


class ShareViews:
    """Read share cookies, and answer ``<prefix>share/…`` and ``<prefix>shares``."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.keys = gate.config.session.secret_keys
        self.settings = gate.config.share
        self.tokens = CsrfTokens(self.keys, "share")

    # -- the share cookie, on every request --------------------------------

    def read_cookie(self, visit: Visit, path: str) -> None:
        """Note in *visit* the live link whose cookie covers *path*, if any."""
        value = visit.cookies.get(self._cookie_name(visit))
        if not value:
            return

        now = self.gate.clock()
        loaded = load_share_cookie(self.keys, value, now)
        if loaded is None:
            audit.warning(
                "share-refused client=%s path=%r reason=cookie not valid",
                visit.client,
                path,
            )
            self.gate.record_event(
                visit, "share-refused", path=path, reason="cookie not valid"
            )
            return

        share_id, scope = loaded
        if not covers(scope, path):
            return

        try:
            record = self.gate.store.get_share(share_id, now)
        except StoreError as error:
            self.gate.note_outage(error, now)
            visit.share_problem = STORE
            return

        if record is None or record.path != scope:
            audit.info(
                "share-ended id=%s client=%s path=%r reason=revoked or expired",
                share_id,
                visit.client,
                path,
            )
            self.gate.record_event(
                visit,
                "share-ended",
                share=share_id,
                path=path,
                reason="revoked or expired",
            )
            visit.share_problem, visit.share_scope = GONE, scope
            return

        visit.share = record
        if not is_shell_share(record):
            visit.share_creator = self.gate.accounts.find(record.created_by)

    def refuse(self, visit: Visit) -> Response:
        """Answer a refused request whose share cookie could not be honoured."""
        pages = self.gate.pages(visit.base)
        if visit.share_problem == STORE:
            audit.warning(
                "store-unavailable client=%s path=%r reason=share not checked",
                visit.client,
                visit.path,
            )
            self.gate.record_event(
                visit,
                "store-unavailable",
                path=visit.path,
                reason="share not checked",
                status=503,
            )
            return pages.unavailable(
                "Shared pages cannot be shown right now. Please try again soon."
            )

        response = pages.share_gone()
        if visit.share_scope is not None:
            response.headers.add("Set-Cookie", self._cookie(visit, visit.share_scope))

        return response

    def _cookie_name(self, visit: Visit) -> str:
        return share_cookie_name(self.gate.config.session.cookie_name, visit.secure)

    def _cookie(
        self, visit: Visit, scope: str, value: str = "", max_age: int = 0
    ) -> str:
        """Return a ``Set-Cookie`` value for the link to *scope*; none deletes."""
        return dump_cookie(
            self._cookie_name(visit),
            value,
            max_age=max_age,
            path=share_cookie_path(visit.base, scope),
            secure=visit.secure,
            httponly=True,
            samesite="Lax",
        )

    # -- opening a link ----------------------------------------------------

    def open(self, visit: Visit, method: str, token: str) -> Response:
        """Answer ``<prefix>share/<token>``: GET shows, POST opens."""
        pages = self.gate.pages(visit.base)
        if method not in ("GET", "HEAD", "POST"):
            response = pages.error(405, "Method not allowed", "Use the button.")
            response.headers["Allow"] = "GET, HEAD, POST"
            return response

        share_id = read_token(self.keys, token)
        if share_id is None:
            audit.warning(
                "share-refused client=%s reason=bad signature or format",
                visit.client,
            )
            self.gate.record_event(
                visit, "share-refused", reason="bad signature or format", status=404
            )
            return pages.share_invalid()

        now = self.gate.clock()
        try:
            if method == "POST":
                record = self.gate.store.use_share(share_id, now)
            else:
                record = self.gate.store.get_share(share_id, now)
        except StoreError as error:
            self.gate.note_outage(error, now)
            # Never the path here: it holds the link's token.
            audit.warning(
                "store-unavailable client=%s share=%s reason=share not checked",
                visit.client,
                share_id,
            )
            self.gate.record_event(
                visit,
                "store-unavailable",
                share=share_id,
                reason="share not checked",
                status=503,
            )
            return pages.unavailable(
                "Shared links cannot be opened right now. Please try again soon."
            )

        # A used-up link stays live for the browsers that opened it, but
        # opens for nobody else.
        if record is None or (method != "POST" and record.uses_left == 0):
            audit.info(
                "share-refused id=%s client=%s reason=expired, revoked or used up",
                share_id,
                visit.client,
            )
            self.gate.record_event(
                visit,
                "share-refused",
                share=share_id,
                reason="expired, revoked or used up",
                status=410,
            )
            return pages.share_gone()

        if method != "POST":
            action = visit.base + quote_path(self.gate.prefix) + "share/" + token
            return pages.share_open(record.path, action)

        return self._opened(visit, record, now)

    def _opened(self, visit: Visit, record: ShareRecord, now: float) -> Response:
        """Swap the token for a cookie, and go to what the link opens."""
        audit.info(
            "share-opened id=%s path=%r client=%s uses_left=%s",
            record.id,
            record.path,
            visit.client,
            _uses(record.uses_left),
        )
        self.gate.record_event(
            visit,
            "share-opened",
            share=record.id,
            path=record.path,
            reason=f"uses left: {_uses(record.uses_left)}",
            status=303,
        )
        until = share_cookie_until(record, now)
        value = dump_share_cookie(self.keys, record.id, record.path, until)
        location = visit.base + quote_path(record.path)
        response = Response(status=303, headers={"Location": location})
        response.headers.add(
            "Set-Cookie", self._cookie(visit, record.path, value, until - int(now))
        )
        return response

    # -- making a link -----------------------------------------------------

    def page(self, visit: Visit, method: str) -> Response:
        """Answer ``<prefix>shares``, the form that makes links."""
        pages = self.gate.pages(visit.base)
        account = visit.account
        if visit.session is None or account is None:
            location = (
                f"{visit.base}{self.gate.prefix}login?next="
                f"{quote_path(self.gate.prefix)}shares"
            )
            return Response(status=303, headers={"Location": location})

        if account.groups.isdisjoint(self.settings.creators):
            audit.warning(
                "access-denied user=%r client=%s path=%r "
                "reason=not in [share] creators",
                account.name,
                visit.client,
                visit.path,
            )
            self.gate.record_event(
                visit,
                "access-denied",
                user=account.name,
                path=visit.path,
                reason="not in [share] creators",
                status=403,
            )
            return pages.forbidden(account.name)

        if method in ("GET", "HEAD"):
            return self._form(visit, 200, {})

        if method != "POST":
            response = pages.error(405, "Method not allowed", "Use the form.")
            response.headers["Allow"] = "GET, HEAD, POST"
            return response

        return self._make(visit, account)

    def _make(self, visit: Visit, account: Account) -> Response:
        assert visit.session is not None, "checked by page()"
        pages = self.gate.pages(visit.base)
        form = read_form(visit.environ, pages)
        if isinstance(form, Response):
            return form

        if not self.tokens.check(form.get("csrf_token"), visit.session.id):
            return self._form(
                visit, 400, form, "This form has expired. Please try again."
            )

        try:
            record = self._new_share(form, account)
        except InvalidShare as error:
            return self._form(visit, 400, form, _sentence(str(error)))

        try:
            self.gate.store.add_share(record)
        except StoreError as error:
            self.gate.note_outage(error, self.gate.clock())
            return pages.unavailable(
                "Links cannot be made right now. Please try again soon."
            )

        audit.info(
            "share-made id=%s path=%r user=%r client=%s expires=%d uses=%s",
            record.id,
            record.path,
            account.name,
            visit.client,
            record.expires,
            _uses(record.uses_left),
        )
        self.gate.record_event(
            visit,
            "share-made",
            user=account.name,
            share=record.id,
            path=record.path,
            status=200,
        )
        url = share_url(
            self._base_url(visit), self.gate.prefix, make_token(self.keys, record.id)
        )
        return pages.share_made(url)

    def _new_share(self, form: Mapping[str, str], account: Account) -> ShareRecord:
        """Check the form and return the link it asks for; raise InvalidShare."""
        gate = self.gate
        path = check_share_path(form.get("path", ""), gate.prefix)
        # Before looking at the files: whether a path exists is itself
        # something its creator may not be allowed to learn.
        if not gate.rules.decide(path, account.name, account.groups).allowed:
            raise InvalidShare(
                f"you may not read {path!r} yourself, so you cannot share it."
            )

        if gate.folder is not None:
            check_share_target(gate.folder, path)

        lifetime = parse_expires(form.get("expires", ""), self.settings.max_expires)
        uses = parse_uses(form.get("uses", ""))
        note = check_note(form.get("note", ""))
        return make_share(path, account.name, gate.clock(), lifetime, uses, note)

    def _form(
        self,
        visit: Visit,
        status: int,
        values: Mapping[str, str],
        error: str = "",
    ) -> Response:
        assert visit.session is not None, "checked by page()"
        shown = {name: values.get(name, "") for name in _FIELDS if name in values}
        return self.gate.pages(visit.base).share_form(
            status,
            self.tokens.issue(visit.session.id),
            shown,
            format_duration(self.settings.max_expires),
            error,
        )

    def _base_url(self, visit: Visit) -> str:
        """``[share] base_url``, or else the address this request came to."""
        if self.settings.base_url:
            return self.settings.base_url

        scheme = "https" if visit.secure else "http"
        return f"{scheme}://{Request(visit.environ).host}{visit.base}"


def _uses(uses_left: int | None) -> str:
    return "unlimited" if uses_left is None else str(uses_left)


def _sentence(text: str) -> str:
    # The checks in shares.py speak to whoever asked, starting in lower case.
    return text[:1].upper() + text[1:]
