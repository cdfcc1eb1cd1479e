"""The WSGI application that puts a login in front of a folder or an app.

:class:`Gate` is the one place where the pieces meet.  For every request it
cleans the environ, canonicalises the path, reads the session cookie, asks
the rules, and then either answers itself (login, logout, refusals, files)
or hands the request to the wrapped application with the user set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from . import headers, hygiene
from .account import AccountView
from .auth_request import USER_HEADER, AuthRequestView
from .config import Config, load_config
from .counting import Sent, observe
from .credentials import Accounts
from .errors import ConfigError
from .file_response import FileAnswer
from .files import (
    ADD_SLASH,
    FILE,
    FOLDER,
    SIBLING_SUFFIXES,
    Found,
    StaticFolder,
    is_case_sensitive,
)
from .files import MISSING as NOT_FOUND
from .login import LoginViews
from .pages import Pages, load_template
from .paths import PathRejected, canonical_path, is_under, quote_path, with_query
from .proxy import client_address, is_https
from .rules import ALLOW, FORBID, Decision, RuleSet
from .session import SessionCodec
from .share_views import ShareViews
from .shares import decide_share
from .signed_in import SessionReader
from .stores import Store, StoreError, open_store
from .throttle import CheckSlots, Throttle
from .trail import Trail
from .visit import (
    Visit,
    decode_wsgi,
    read_cookies,
    session_cookie_name,
)

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("static_gate")
audit = logging.getLogger("static_gate.audit")

#: Environ key holding the id of the share link that a request came with.
SHARE_KEY = "static_gate.share"


class Gate:
    """A WSGI application serving a folder, or guarding *app*, behind a login.

    :param config: a loaded :class:`~static_gate.config.Config`.
    :param app: the WSGI application to guard; leave out to serve
        ``[static] root`` instead.
    :param hasher: argon2 parameters for new and rehashed passwords.
    :param clock: returns the time in seconds; tests pass a fake one.
    :param store: the shared state store; by default the one that
        ``[state] store`` names.
    :raises ConfigError: neither or both of *app* and ``[static] root``, a
        users file or template that cannot be used, or a store out of reach.
    """

    def __init__(
        self,
        config: Config,
        app: WSGIApplication | None = None,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        root = config.static.root
        where = config.source.name if config.source else "configuration"
        if root is None and app is None:
            raise ConfigError(
                f"{where}: [static] root is not set and no app was given; "
                "set root to the folder to serve."
            )

        if root is not None and app is not None:
            raise ConfigError(
                f"{where}: [static] root is set but an app was given to wrap; "
                "remove root to guard the app, or pass no app."
            )

        self.config = config
        self.app = app
        self.clock = clock
        self.folder: StaticFolder | None = None
        case_sensitive = config.static.case_sensitive
        if root is not None:
            self.folder = StaticFolder(
                root,
                config.static.follow_symlinks,
                config.static.directory_listing,
                config.static.precompressed,
            )
            if case_sensitive is None:
                case_sensitive = is_case_sensitive(root)

        self.rules = RuleSet(config.rules, case_sensitive is not False)
        self.accounts = Accounts(config.auth, hasher, clock)
        self.sessions = SessionCodec(
            config.session.secret_keys,
            config.session.lifetime,
            config.session.idle_timeout,
            config.session.remember_lifetime,
            config.session.remember_idle_timeout,
        )
        self.prefix = config.pages.prefix
        self.template = load_template(config.pages.template)
        self.store = store if store is not None else _open_store(config, where)
        self.throttle = Throttle(self.store, config.throttle)
        self.check_slots = CheckSlots(
            config.throttle.concurrent_checks, config.throttle.check_wait
        )
        self.login_views = LoginViews(self)
        self.account_view = AccountView(self)
        self.auth_view = AuthRequestView(self)
        self.share_views = ShareViews(self)
        self.trail = Trail(
            config.trail,
            config.session.secret_keys[0].value,
            prefix=self.prefix,
            where=where,
        )
        self.session_reader = SessionReader(self)

    @classmethod
    def from_file(cls, path: str, app: WSGIApplication | None = None) -> Gate:
        """Load the configuration at *path* and build a gate from it.

        The gate keeps this configuration; :class:`~static_gate.ReloadingGate`
        follows changes to the file instead.
        """
        return cls(load_config(path), app)

    def close(self, keep_store: bool = False) -> None:
        """Release this gate's threads, and its store unless *keep_store*."""
        self.check_slots.close()
        if not keep_store:
            self.store.close()

    # -- WSGI entry point -------------------------------------------------

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            visit = self._begin(environ)
            if isinstance(visit, Response):
                return visit(environ, start_response)

            answer = self._dispatch(visit)
        except Exception:
            logger.exception(
                "request failed: %s %r",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
            )
            response = self.pages("").error(
                500, "Something went wrong", "The page could not be shown."
            )
            headers.protect(response.headers)
            return response(environ, start_response)

        if visit.decision is not None and self.trail.enabled:
            return self._answer_recorded(visit, visit.decision, answer, start_response)

        if isinstance(answer, Decision):
            return self._pass_on(visit, answer, start_response)

        return answer(environ, start_response)

    def _answer_recorded(
        self,
        visit: Visit,
        decision: Decision,
        answer: Response | FileAnswer | Decision,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Answer, and add the answer to the access trail once it is sent."""
        when = self.clock()
        # The front server sends an offloaded file: its size is unknown here.
        offloaded = (
            isinstance(answer, FileAnswer) and self.config.static.offload != "none"
        )

        def respond(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
            if isinstance(answer, Decision):
                return self._pass_on(visit, answer, start)
            return answer(environ, start)

        def record(sent: Sent) -> None:
            self.record_content(
                visit,
                decision,
                when=when,
                path=visit.path,
                method=visit.environ.get("REQUEST_METHOD"),
                status=sent.status,
                sent=None if offloaded else sent.size,
            )

        return observe(respond, visit.environ, start_response, record)

    def record_content(
        self,
        visit: Visit,
        decision: Decision,
        *,
        when: float,
        path: str,
        method: str | None,
        status: int | None,
        sent: int | None,
    ) -> None:
        """Add an answer with content, or a refusal, to the access trail."""
        self.trail.content(
            when,
            user=visit.user,
            share=visit.share.id if visit.share is not None else None,
            client=visit.client,
            method=method,
            path=path,
            rule=None if decision.default else decision.rule.path,
            decision=decision.outcome,
            reason=decision.reason,
            status=status,
            sent=sent,
        )

    def record_event(
        self,
        visit: Visit,
        name: str,
        *,
        user: str | None = None,
        share: str | None = None,
        path: str | None = None,
        reason: str | None = None,
        status: int | None = None,
    ) -> None:
        """Add a sign-in or share-link event of *visit* to the access trail."""
        self.trail.event(
            self.clock(),
            name,
            client=visit.client,
            user=user,
            share=share,
            path=path,
            reason=reason,
            status=status,
        )

    def _begin(self, environ: WSGIEnvironment) -> Visit | Response:
        removed = hygiene.scrub(environ)
        script_name = environ.get("SCRIPT_NAME", "")
        base = quote_path(decode_wsgi(script_name).rstrip("/")) if script_name else ""
        status = hygiene.oversized_part(environ)
        if status is not None:
            return self._refuse(base, status)

        raw_path = environ.get("PATH_INFO", "")
        try:
            path = canonical_path(raw_path)
        except PathRejected as error:
            logger.info("request path refused (%s): %r", error.reason, raw_path)
            return self._refuse(base, error.status)

        if path != decode_wsgi(raw_path):
            return self._redirect_to_canonical(environ, base, path)

        trusted = self.config.proxy.trusted
        secure = self.config.session.secure_cookie
        if secure is None:
            secure = is_https(environ, trusted)

        cookie_name = session_cookie_name(self.config.session.cookie_name, secure, base)
        visit = Visit(
            environ=environ,
            path=path,
            base=base,
            client=client_address(environ, trusted),
            secure=secure,
            cookie_name=cookie_name,
            cookies=read_cookies(environ, self.config.session.cookie_name),
            original_uri=removed.get("HTTP_X_ORIGINAL_URI"),
        )
        self.session_reader.read(visit)
        if not is_under(path, self.prefix):
            self.share_views.read_cookie(visit, path)
            # Never REMOTE_USER: whoever holds a link is nobody in particular.
            if visit.share is not None:
                environ[SHARE_KEY] = visit.share.id

        return visit

    def _refuse(self, base: str, status: int) -> Response:
        texts = {
            400: ("Bad request", "The address of this request is not valid."),
            414: ("Address too long", "The address of this request is too long."),
            431: ("Headers too large", "This request carries too many cookies."),
        }
        heading, text = texts[status]
        response = self.pages(base).error(status, heading, text)
        headers.protect(response.headers)
        return response

    def _redirect_to_canonical(
        self, environ: WSGIEnvironment, base: str, path: str
    ) -> Response:
        location = with_query(base + quote_path(path), environ.get("QUERY_STRING", ""))

        response = Response(status=308, headers={"Location": location})
        headers.protect(response.headers)
        return response

    # -- sessions ---------------------------------------------------------

    def note_outage(self, error: StoreError, now: float) -> None:
        """Log that the state store is out of reach, once a minute at most."""
        self.session_reader.note_outage(error, now)

    def session_cookie(self, visit: Visit) -> str | None:
        """Return the ``Set-Cookie`` value that *visit* calls for, or ``None``."""
        return self.session_reader.session_cookie(visit)

    def set_session_cookie(self, visit: Visit, target: Headers) -> None:
        """Add the ``Set-Cookie`` header that *visit* calls for, if any."""
        self.session_reader.set_session_cookie(visit, target)

    # -- dispatching ------------------------------------------------------

    def pages(self, base: str) -> Pages:
        """Return the page renderer for a gate mounted at *base*."""
        return Pages(
            self.config.pages.title,
            self.config.pages.message,
            self.template,
            base + self.prefix,
        )

    def _dispatch(self, visit: Visit) -> Response | FileAnswer | Decision:
        """Answer *visit*, or return the decision to pass it to the app."""
        if is_under(visit.path, self.prefix):
            return self._gate_page(visit)

        decision = self.decide(visit, visit.path)
        visit.decision = decision
        if decision.outcome == ALLOW:
            if self.folder is None:
                return decision

            return self._serve(visit, decision)

        return self._refuse_access(visit, decision)

    def _gate_page(self, visit: Visit) -> Response:
        name = visit.path[len(self.prefix) :]
        method = visit.environ.get("REQUEST_METHOD", "GET")
        if name == "login":
            response = self.login_views.login(visit, method)
        elif name == "logout":
            response = self.login_views.logout(visit, method)
        elif name == "account":
            response = self.account_view.answer(visit, method)
        elif name == "auth":
            response = self.auth_view.answer(visit)
        elif name.startswith("share/"):
            response = self.share_views.open(visit, method, name[len("share/") :])
        elif name == "shares":
            response = self.share_views.page(visit, method)
        else:
            response = self.pages(visit.base).error(
                404, "Not found", "There is no page at this address."
            )

        return self.finish(visit, response)

    def _refuse_access(self, visit: Visit, decision: Decision) -> Response:
        """Answer a decision that does not allow: 403, or off to the login page."""
        visit.decision = decision
        if visit.share_problem is not None:
            return self.finish(visit, self.share_views.refuse(visit))

        if visit.store_failed:
            audit.warning(
                "store-unavailable client=%s path=%r reason=session not checked",
                visit.client,
                visit.path,
            )
            self.record_event(
                visit,
                "store-unavailable",
                path=visit.path,
                reason="session not checked",
                status=503,
            )
            response = self.pages(visit.base).unavailable(
                "Signed-in pages cannot be shown right now. Please try again soon."
            )
            return self.finish(visit, response)

        if decision.outcome == FORBID:
            self.log_denied(visit, visit.path, decision)
            response = self.pages(visit.base).forbidden(visit.user)
        else:
            response = self.login_views.redirect_to_login(visit)

        return self.finish(visit, response)

    def log_denied(self, visit: Visit, path: str, decision: Decision) -> None:
        """Write the audit line for a visitor refused *path* by the rules."""
        if visit.share is not None:
            audit.warning(
                "access-denied share=%s client=%s path=%r rule=%r reason=%s",
                visit.share.id,
                visit.client,
                path,
                decision.rule.path,
                decision.reason,
            )
            return

        audit.warning(
            "access-denied user=%r client=%s path=%r rule=%r reason=%s",
            visit.user,
            visit.client,
            path,
            decision.rule.path,
            decision.reason,
        )

    def finish(self, visit: Visit, response: Response) -> Response:
        """Add the protective headers and any cookie update to a gate answer."""
        headers.protect(response.headers)
        self.set_session_cookie(visit, response.headers)
        return response

    def _serve(self, visit: Visit, decision: Decision) -> Response | FileAnswer:
        assert self.folder is not None, "only called in folder mode"
        pages = self.pages(visit.base)
        method = visit.environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            response = pages.error(
                405, "Method not allowed", "Files here can only be read."
            )
            response.headers["Allow"] = "GET, HEAD"
            return self.finish(visit, response)

        found = self.folder.find(visit.path)
        if found.kind == FILE:
            for other in self._also_judged(visit.path, found):
                other_decision = self.decide(visit, other)
                if not other_decision.allowed:
                    return self._refuse_access(visit, other_decision)

                if other_decision.rule.cache_control is None:
                    decision = other_decision
                    visit.decision = decision

            file_headers = self._content_headers(visit, decision)
            offload = self.config.static.offload
            if offload != "none":
                return self.folder.hand_over(
                    found, file_headers, offload, self.config.static.offload_prefix
                )

            answer = self.folder.respond(found, visit.environ, file_headers)
            if answer is not None:
                return answer

            # Gone between the lookup and the opening.
            found = Found(NOT_FOUND)

        if found.kind == ADD_SLASH:
            location = with_query(
                visit.base + quote_path(visit.path + "/"),
                visit.environ.get("QUERY_STRING", ""),
            )
            response = Response(status=308, headers={"Location": location})
        elif found.kind == FOLDER:
            response = pages.listing(visit.path, self._visible(visit, found))
        else:
            response = pages.error(
                404, "Not found", "There is no page at this address."
            )

        return self.finish(visit, response)

    def _content_headers(
        self, visit: Visit, decision: Decision
    ) -> list[tuple[str, str]]:
        """The headers of a file or of the wrapped app's answer."""
        cache_control = decision.rule.cache_control
        result = headers.content_headers(cache_control)
        cookie = self.session_cookie(visit)
        # A publicly cacheable answer must never carry a Set-Cookie.
        if cookie is not None and cache_control is None:
            result.append(("Set-Cookie", cookie))

        if self.config.proxy.user_header and visit.user is not None:
            result.append((USER_HEADER, visit.user))

        return result

    @staticmethod
    def _also_judged(path: str, found: Found) -> list[str]:
        """Other paths whose rules must allow reading the file *found*.

        A folder's index file is its own path, and a followed symbolic link
        leads to another one.  A compressed sibling such as
        ``a.html.gz`` holds the same content as ``a.html``, so a rule that
        closes ``a.html`` closes its siblings too.
        """
        others = list(found.also_judged)

        if path.endswith(SIBLING_SUFFIXES):
            others.append(path[: path.rindex(".")])

        return others

    def decide(self, visit: Visit, path: str) -> Decision:
        """Decide what the visitor may do with *path*, share link included.

        A share link is asked only when the visitor's own rights do not
        allow, and only to read.
        """
        groups = visit.account.groups if visit.account else frozenset()
        decision = self.rules.decide(path, visit.user, groups)
        if decision.allowed or visit.share is None:
            return decision

        if visit.environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return decision

        shared = decide_share(self.rules, visit.share, path, visit.share_creator)
        return decision if shared is None else shared

    def _visible(self, visit: Visit, found: Found) -> list[tuple[str, bool]]:
        """The entries of a listed folder that the visitor may open."""
        assert self.folder is not None, "only called in folder mode"
        return [
            (name, is_folder)
            for name, is_folder in self.folder.list_folder(found)
            if self.decide(
                visit, visit.path + name + ("/" if is_folder else "")
            ).allowed
        ]

    def _pass_on(
        self, visit: Visit, decision: Decision, start_response: StartResponse
    ) -> Iterable[bytes]:
        assert self.app is not None, "only called in wrap mode"
        gate_headers = self._content_headers(visit, decision)

        def guarded_start_response(
            status: str,
            app_headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            merged = headers.merge(app_headers, gate_headers)
            return start_response(status, merged, exc_info)

        return self.app(visit.environ, guarded_start_response)


def _open_store(config: Config, where: str) -> Store:
    try:
        store = open_store(config.state.store, config.state.folder)
        store.check()
    except StoreError as error:
        raise ConfigError(
            f"{where}: [state] store cannot be used ({error}); check that it "
            "runs and that this process may write to it."
        ) from None

    if config.state.store == "memory":
        logger.warning(
            "state store: %s; logouts and failure counts are not shared "
            "with other processes",
            store.description,
        )
    else:
        logger.info("state store: %s", store.description)

    return store
