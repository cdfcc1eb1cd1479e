"""Login throttling: failure budgets per user name and per client address.

Failed sign-ins are counted in the shared store under two keys, the user
name as entered and the client address.  Once either key has used its budget
(``max_failures`` within ``window``), further attempts are refused with 429
before any password is checked.  The first refused attempt keeps the key
blocked for ``window``; each further one doubles that, up to a day.  A
successful sign-in clears the user name's count; the address keeps its own.

:class:`CheckSlots` bounds how many password checks one process runs at
once, so that a flood of logins cannot take all memory from readers, and
runs them on threads of lower scheduling priority, so that it takes only
the CPU time that readers leave.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from .stores import Store

#: The longest a key can stay blocked, in seconds.
MAX_BLOCK = 24 * 3600

#: How much lower than readers password checks run (``nice`` steps).  At
#: 10, the kernel gives a check about a tenth of the CPU a reader gets.
CHECK_NICENESS = 10

T = TypeVar("T")


@dataclass(frozen=True)
class ThrottleConfig:
    """``[throttle]``: how many failures, over how long, and checks at once."""

    max_failures: int = 5
    window: int = 15 * 60
    concurrent_checks: int = 1
    check_wait: int = 2


def throttle_keys(user: str, client: str) -> tuple[str, str]:
    """Return the failure-count keys for a sign-in attempt.

    The user name is lower-cased so that ``Alice`` and ``alice`` share one
    budget.
    """
    return f"user:{user.lower()}", f"addr:{client}"


def user_key(user: str) -> str:
    """Return the key whose count a successful sign-in by *user* clears."""
    return f"user:{user.lower()}"


class Throttle:
    """Apply the failure budgets of *config* using *store*."""

    def __init__(self, store: Store, config: ThrottleConfig) -> None:
        self.store = store
        self.config = config

    def retry_after(self, keys: Sequence[str], now: float) -> int | None:
        """Return seconds to wait when any key is over budget, else ``None``."""
        waits = []
        for key in keys:
            count, resets = self.store.get_failures(key, now)
            if count >= self.config.max_failures and resets > now:
                waits.append(math.ceil(resets - now))

        return max(waits) if waits else None

    def add_failure(self, keys: Sequence[str], now: float) -> None:
        """Count a failed or refused attempt against every key."""
        budget = self.config.max_failures
        for key in keys:
            count, resets = self.store.add_failure(key, now, self.config.window)
            if count > budget:
                # Past the budget, every attempt doubles the wait.
                block = self.config.window * 2 ** min(count - budget - 1, 16)
                until = now + min(block, MAX_BLOCK)
                if until > resets:
                    self.store.extend_failures(key, now, until)

    def clear(self, key: str) -> None:
        """Forget the failures of one key, after a successful sign-in."""
        self.store.clear_failures(key)


class CheckBusy(Exception):
    """No password check could start within the wait."""


class CheckSlots:
    """At most *size* password checks at once in this process.

    At most *size* more callers wait for a free slot; any further caller is
    turned away at once.

    :meth:`run` performs a check on one of *size* threads that lowered their
    own priority (on Linux, ``nice`` is per thread, and argon2's own worker
    threads inherit it).  A caller that cannot get a slot within *wait*
    seconds is turned away with :class:`CheckBusy`.
    """

    def __init__(self, size: int, wait: float) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._size = size
        self._queue_lock = threading.Lock()
        self._waiting = 0
        self.wait = wait
        self._pool = ThreadPoolExecutor(
            max_workers=size,
            thread_name_prefix="static-gate-check",
            initializer=_lower_priority,
        )

    def acquire(self) -> bool:
        if self._slots.acquire(blocking=False):
            return True

        # At most as many sign-ins wait as run: each one holds a server
        # thread meanwhile, and the threads must stay free for readers.
        with self._queue_lock:
            if self._waiting >= self._size:
                return False
            self._waiting += 1

        try:
            return self._slots.acquire(timeout=self.wait)
        finally:
            with self._queue_lock:
                self._waiting -= 1

    def close(self) -> None:
        """Let the check threads end once their running checks are done."""
        self._pool.shutdown(wait=False)

    def release(self) -> None:
        self._slots.release()

    def run(self, check: Callable[[], T]) -> T:
        """Run *check* on a low-priority thread and return its result.

        :raises CheckBusy: every slot stayed taken for *wait* seconds.
        """
        if not self.acquire():
            raise CheckBusy()

        try:
            return self._pool.submit(check).result()
        finally:
            self.release()


def _lower_priority() -> None:
    # Only Linux applies PRIO_PROCESS to one thread; elsewhere it would slow
    # the whole process, readers included.
    if not sys.platform.startswith("linux"):
        return

    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + CHECK_NICENESS))
