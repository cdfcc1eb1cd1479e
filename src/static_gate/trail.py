"""The access trail: one JSON record per content answer and per sign-in event.

A record says who (a user, or a share link by its id) read or was refused
which path, from which address, under which rule, with which status and how
many bytes.  Sign-in events (``login``, ``login-failed``, ``logout`` ...) are
recorded the same way, so one file answers "who opened Mia's report, and
when?".  :mod:`.trail_reader` reads the records back for ``static-gate audit``.

The trail holds only what the gate passes in: the canonical path, never the
query string, and never a cookie, a password or a share link's token.
Client addresses may be kept as keyed hashes instead.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import logging.handlers
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

#: The logger every record goes through, as one line of JSON.
TRAIL_LOGGER = "static_gate.trail"

#: Answers recorded as content: shown (200, 206, 304), allowed behind
#: nginx's ``auth_request`` (204), or refused (403).  Redirects, 404s and
#: errors show nothing of the content and are left out.
CONTENT_STATUSES = frozenset({200, 204, 206, 304, 403})

#: Permissions of a trail file the gate creates: owner and group may read.
FILE_MODE = 0o640

#: How every record starts.  JSON escapes a quote inside a string, so this
#: marks the start of a record even within a line that a crash cut short.
RECORD_START = '{"time":'


@dataclass(frozen=True)
class TrailConfig:
    """``[trail]``: where the access trail goes."""

    #: The JSON-lines file; ``None`` sends records to the logger only.
    file: Path | None = None
    #: Keep client addresses as keyed hashes (``h:`` and 16 hex digits).
    hash_addresses: bool = False


class Trail:
    """Write access-trail records, one JSON object per line.

    Records always go to the :data:`TRAIL_LOGGER` logger, which does not
    pass them on to the root logger: they would repeat every request in the
    ordinary log.  An administrator may attach any handler to it.  With
    ``file`` set they are also appended to that file.

    :param config: the ``[trail]`` settings.
    :param key: the signing key; address hashes are keyed with a key
        derived from it, so they are the same for one site and cannot be
        reversed by trying every address without it.
    :param prefix: ``[pages] prefix``; under it only the page's name is
        recorded, so the token of a share link (``<prefix>share/<token>``)
        never reaches the trail.
    :param where: the configuration file's name, for error messages.
    :raises ConfigError: the file cannot be opened for appending.

    .. warning:: Hashes change when the signing key is rotated, so records
       from before and after a rotation cannot be matched by address.
       Anyone who holds the key can still find which address a hash stands
       for; hashing protects copies of the trail, not the server.
    """

    def __init__(
        self,
        config: TrailConfig,
        key: bytes,
        *,
        prefix: str = "/_gate/",
        where: str = "configuration",
    ) -> None:
        self.config = config
        self.prefix = prefix
        self._logger = logging.getLogger(TRAIL_LOGGER)
        # Not diagnostic logging, which only the CLI configures: these lines
        # are the record the configuration asks for and must not fall into
        # the ordinary log.  A level an administrator set is kept.
        self._logger.propagate = False
        if self._logger.level == logging.NOTSET:
            self._logger.setLevel(logging.INFO)

        derived = hmac.new(key, b"static-gate trail addresses", hashlib.sha256)
        self._hasher = hmac.new(derived.digest(), digestmod=hashlib.sha256)
        self._handler: logging.Handler | None = None
        if config.file is not None:
            try:
                self._handler = _TrailFileHandler(config.file)
            except OSError as error:
                raise ConfigError(
                    f"{where}: [trail] file {str(config.file)!r} cannot be opened "
                    f"({error.strerror}); create its folder and let this "
                    "process's user write there."
                ) from None

            # A gate that is dropped without close() (a test, a reload)
            # must not leave the file open.
            self._closing = weakref.finalize(self, self._handler.close)

    @property
    def enabled(self) -> bool:
        """Tell whether records go anywhere; if not, callers may skip the work."""
        return self._handler is not None or self._has_listeners()

    def content(
        self,
        when: float,
        *,
        user: str | None,
        client: str,
        method: str | None,
        path: str,
        rule: str | None,
        decision: str,
        reason: str,
        status: int | None,
        sent: int | None,
        share: str | None = None,
    ) -> None:
        """Record an answer that shows or refuses content.

        Statuses outside :data:`CONTENT_STATUSES` are not recorded.

        :param when: the time of the request, in seconds since the epoch.
        :param path: the canonical path, without a query string.
        :param rule: the path of the rule that decided; ``None`` when no rule
            matched and the default (signed-in users) applied.
        :param decision: ``"allow"`` or ``"forbid"``; *reason* says why.
        :param sent: body bytes sent; ``None`` when the front server sent
            the file and the gate cannot know.
        :param share: the share link's id, never its token.
        """
        if status not in CONTENT_STATUSES or not self.enabled:
            return

        self._write(
            when,
            "content",
            user=user,
            share=share,
            client=client,
            method=method,
            path=path,
            rule=rule,
            decision=decision,
            reason=reason,
            status=status,
            sent=sent,
        )

    def event(
        self,
        when: float,
        name: str,
        *,
        client: str,
        user: str | None = None,
        share: str | None = None,
        path: str | None = None,
        reason: str | None = None,
        status: int | None = None,
    ) -> None:
        """Record a sign-in event such as ``login-failed``.

        :param name: the event's name, as in the audit log.
        :param user: the user, or for a failed sign-in the name as entered.
        """
        if self.enabled:
            self._write(
                when,
                name,
                user=user,
                share=share,
                client=client,
                path=path,
                reason=reason,
                status=status,
            )

    def close(self) -> None:
        """Close the trail file; later records go to the logger only."""
        if self._handler is not None:
            self._handler = None
            self._closing()

    def _write(
        self,
        when: float,
        event: str,
        *,
        client: str,
        user: str | None,
        share: str | None,
        path: str | None,
        status: int | None,
        reason: str | None,
        method: str | None = None,
        rule: str | None = None,
        decision: str | None = None,
        sent: int | None = None,
    ) -> None:
        record = {
            "time": format_time(when),
            "event": event,
            "user": user or None,
            "share": share or None,
            "client": self._client(client),
            "method": method,
            "path": None if path is None else self._path(path),
            "rule": rule,
            "decision": decision,
            "reason": reason,
            "status": status,
            "bytes": sent,
        }
        # ASCII only: any byte a client managed to send is escaped, and a
        # line never breaks anywhere but at its end.
        line = json.dumps(record, separators=(",", ":"))
        entry = self._logger.makeRecord(
            TRAIL_LOGGER, logging.INFO, "", 0, line, (), None
        )
        if self._handler is not None:
            self._handler.handle(entry)

        if self._has_listeners():
            self._logger.handle(entry)

    def _has_listeners(self) -> bool:
        """Tell whether a handler an administrator attached wants records."""
        logger = self._logger
        return logger.isEnabledFor(logging.INFO) and logger.hasHandlers()

    def _path(self, path: str) -> str:
        # Callers pass the canonical path; should one ever pass a raw URI,
        # its query string (which may carry a token) is dropped all the
        # same.  A file whose name holds a "?" is recorded by the part before.
        path = path.split("?", 1)[0]
        if path.startswith(self.prefix):
            page = path[len(self.prefix) :].split("/", 1)
            return self.prefix + page[0] + ("/" if len(page) > 1 else "")

        return path

    def _client(self, address: str) -> str | None:
        if not address or address == "-":
            return None

        if not self.config.hash_addresses:
            return address

        digest = self._hasher.copy()
        digest.update(address.encode())
        # 64 bits: no two of a site's addresses share a hash in practice.
        return "h:" + digest.hexdigest()[:16]


class _TrailFileHandler(logging.handlers.WatchedFileHandler):
    """Append lines to the trail file, and reopen it once it has been moved.

    WatchedFileHandler compares the file's device and inode with those of
    the open stream before every record, so after logrotate renames the
    file the next record starts a new one: a plain ``rotate`` is safe and
    ``copytruncate`` is not needed.  A file it creates gets
    :data:`FILE_MODE` whatever the umask.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.setFormatter(logging.Formatter("%(message)s"))

    def _open(self) -> io.TextIOWrapper:
        descriptor = _open_for_appending(self.baseFilename)
        return open(descriptor, "a", encoding=self.encoding, errors=self.errors)


def _open_for_appending(name: str) -> int:
    """Open the file *name* for appending; one made here gets FILE_MODE."""
    flags = os.O_WRONLY | os.O_APPEND
    while True:
        try:
            descriptor = os.open(name, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            pass
        else:
            # Whatever the umask took away (the group's read permission, say).
            os.fchmod(descriptor, FILE_MODE)
            return descriptor

        try:
            return os.open(name, flags)
        except FileNotFoundError:
            continue  # moved away between the two calls: make a new one


def format_time(seconds: float) -> str:
    """Return a record's ``time``: ISO 8601, UTC, whole seconds, ``Z``.

    Such times sort as text in time order, which :mod:`.trail_reader` uses.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
