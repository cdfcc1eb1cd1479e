"""Following the configuration file while serving, without a restart.

:class:`ReloadingGate` looks at the configuration file's ``stat`` every
couple of seconds (no extra dependency, no thread).  When it changed, the
file is loaded and checked exactly as at start-up; a valid configuration
replaces the running gate for the next requests, a broken one is refused
with one log line and the last good configuration keeps serving.  Each
worker process does this on its own, so every worker follows within the
interval of its next request.

The users file is followed by the gate itself (see :mod:`.credentials`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import load_config
from .errors import StaticGateError
from .gate import Gate

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("static_gate")

#: Seconds between two looks at the configuration file.
CHECK_INTERVAL = 2.0


class ReloadingGate:
    """A :class:`~static_gate.Gate` that follows its configuration file.

    :param path: the configuration file.
    :param app: the WSGI application to guard, as for :class:`Gate`.
    :param clock: a monotonic clock, for tests.
    :param gate_options: passed on to every :class:`Gate` built (``hasher``,
        ``clock``).
    :raises ConfigError: the configuration is broken at start-up.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        app: WSGIApplication | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **gate_options: Any,
    ) -> None:
        self.path = Path(path)
        self.app = app
        self._clock = clock
        self._options = gate_options
        self._lock = threading.Lock()
        self._signature = _signature(self.path)
        self.current = Gate(load_config(self.path), app, **gate_options)
        self._checked_at = clock()

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        now = self._clock()
        if not 0 <= now - self._checked_at < CHECK_INTERVAL:
            self._look(now)

        return self.current(environ, start_response)

    def _look(self, now: float) -> None:
        # One request per process looks; the others go on meanwhile.
        if not self._lock.acquire(blocking=False):
            return

        try:
            self._checked_at = now
            signature = _signature(self.path)
            if signature != self._signature:
                self._signature = signature
                self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> None:
        old = self.current
        try:
            config = load_config(self.path)
            same_store = config.state == old.config.state
            store = old.store if same_store else None
            new = Gate(config, self.app, store=store, **self._options)
        except StaticGateError as error:
            message = " ".join(str(error).splitlines())
            logger.error(
                "configuration not reloaded, the last good one keeps serving: %s",
                message,
            )
            return

        self.current = new
        old.close(keep_store=same_store)
        logger.info("configuration reloaded from %s", self.path)


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        result = path.stat()
    except OSError:
        return None

    return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns)
