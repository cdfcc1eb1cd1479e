"""The answer to nginx's ``auth_request``: may this visitor read this URI?

nginx serves the files itself and, before each request, asks
``<prefix>auth`` with the original request's cookies and its URI in
``X-Original-URI``.  The answer is 204 (allowed), 401 (sign in first) or
403 (refused), never anything else, because nginx treats any other status
as an error.

The URI is judged exactly as a direct request would be: decoded once,
brought to its canonical form, and refused when it is not canonical, since
nginx would otherwise serve a file that the rules never saw.  The header is
believed only from a trusted proxy (``[proxy] trusted``); from anyone else
the answer is 403.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from werkzeug.wrappers import Response

from .files import INDEX, SIBLING_SUFFIXES
from .paths import PathRejected, canonical_path, is_under
from .proxy import is_trusted
from .rules import ALLOW, FORBID, Decision
from .share_views import STORE

if TYPE_CHECKING:
    from .gate import Gate
    from .visit import Visit

logger = logging.getLogger("static_gate")
audit = logging.getLogger("static_gate.audit")

#: Response header naming the signed-in user, for nginx's access log.
USER_HEADER = "X-Static-Gate-User"


class AuthRequestView:
    """Answer ``<prefix>auth`` subrequests."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def answer(self, visit: Visit) -> Response:
        peer = str(visit.environ.get("REMOTE_ADDR") or "")
        if not is_trusted(peer, self.gate.config.proxy.trusted):
            logger.warning("auth request refused: peer %s is not a trusted proxy", peer)
            return Response(status=403)

        path = _original_path(visit.original_uri)
        if path is None:
            logger.info("auth request refused: X-Original-URI %r", visit.original_uri)
            return Response(status=403)

        if is_under(path, self.gate.prefix):
            return Response(status=204)

        # The subrequest carries the original request's cookies, so a share
        # cookie arrives here for the path it covers.
        self.gate.share_views.read_cookie(visit, path)
        decision = self._judge(visit, path)
        if decision.outcome == ALLOW:
            self._record(visit, path, decision, 204)
            response = Response(status=204)
            if visit.user is not None:
                response.headers[USER_HEADER] = visit.user
            return response

        if visit.store_failed or visit.share_problem == STORE:
            audit.warning(
                "store-unavailable client=%s path=%r reason=%s not checked",
                visit.client,
                path,
                "session" if visit.store_failed else "share",
            )
            self.gate.record_event(
                visit,
                "store-unavailable",
                path=path,
                reason=f"{'session' if visit.store_failed else 'share'} not checked",
                status=403,
            )
            return Response(status=403)

        if decision.outcome == FORBID:
            self.gate.log_denied(visit, path, decision)
            self._record(visit, path, decision, 403)
            return Response(status=403)

        return Response(status=401)

    def _record(self, visit: Visit, path: str, decision: Decision, status: int) -> None:
        # nginx sends the file, and asks with GET whatever the request was:
        # neither the method nor the size is known here.
        self.gate.record_content(
            visit,
            decision,
            when=self.gate.clock(),
            path=path,
            method=None,
            status=status,
            sent=None,
        )

    def _judge(self, visit: Visit, path: str) -> Decision:
        """Decide for *path* and for what nginx would really send for it."""
        paths = [path]
        if path.endswith("/"):
            paths.append(path + INDEX)
        if path.endswith(SIBLING_SUFFIXES):
            paths.append(path[: path.rindex(".")])

        decision = self.gate.decide(visit, path)
        for other in paths[1:]:
            other_decision = self.gate.decide(visit, other)
            if not other_decision.allowed:
                return other_decision

        return decision


def _original_path(uri: str | None) -> str | None:
    """Return the canonical path of a raw request URI, or None if it has none."""
    if not uri or not uri.startswith("/"):
        return None

    # Not urlsplit: a request URI such as "//a/b" is a path, not a host.
    raw = uri.split("?", 1)[0]
    try:
        path = canonical_path(unquote_to_bytes(raw).decode("latin-1"))
    except PathRejected:
        return None

    decoded = unquote_to_bytes(raw).decode("utf-8", "replace")
    return path if path == decoded else None
