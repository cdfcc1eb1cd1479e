"""Passwords and accounts: argon2id hashes, the users file, the shared password.

The users file has one account per line, ``name:hash:group,group``, and
``#`` comments.  It is re-read when it changes on disk, so the command line
can add, change or remove users while the gate runs.  Every account carries a
fingerprint of its stored hash; a session remembers the fingerprint it was
issued with, so a changed password or a removed user ends old sessions.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .atomic import locked, write_atomic
from .config import AuthConfig, is_group_name, is_user_name
from .errors import ConfigError

logger = logging.getLogger("static_gate")

#: Shortest password the command line accepts.
MIN_PASSWORD_LENGTH = 12

#: Seconds between two checks of the users file for changes.
RELOAD_INTERVAL = 1.0

_HEADER = (
    "# static-gate users, one per line: name:argon2 hash:groups\n"
    "# Manage with 'static-gate user add|passwd|remove|list'.\n"
)


@dataclass(frozen=True)
class Account:
    """Someone who can sign in: a named user, or the shared password."""

    name: str
    password_hash: str
    groups: frozenset[str] = frozenset()

    @cached_property
    def fingerprint(self) -> str:
        # Checked on every request; computed once per account.
        return fingerprint(self.password_hash)


def fingerprint(password_hash: str) -> str:
    """Return a short digest of a stored hash, to bind sessions to it.

    The digest says nothing useful about the password: the hash it comes from
    holds a random salt that the digest does not reveal.
    """
    digest = hashlib.blake2b(
        password_hash.encode(), digest_size=9, person=b"static-gate-fp"
    ).digest()
    return urlsafe_b64encode(digest).decode()


def check_password_strength(password: str) -> None:
    """Refuse passwords that are too short to be worth hashing.

    :raises ValueError: with a sentence that says what is required.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters long"
        )


def parse_users(text: str, source: str) -> dict[str, Account]:
    """Read users-file text into accounts by name.

    :param source: the file name, for error messages.
    :raises ConfigError: listing every malformed line.
    """
    accounts: dict[str, Account] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue

        # An argon2 hash holds no ":", so the fields split from the left.
        name, colon, rest = line.partition(":")
        password_hash, _, group_text = rest.partition(":")
        groups = [group for group in group_text.split(",") if group]
        where = f"{source}: line {number}"
        if not colon:
            # Never echo the line: it may be a password pasted by mistake.
            problems.append(f"{where}: expected name:hash:groups.")
        elif not is_user_name(name):
            problems.append(f"{where}: {name!r} is not a valid user name.")
        elif name in accounts:
            problems.append(f"{where}: user {name!r} appears twice.")
        elif not password_hash.startswith("$argon2"):
            problems.append(
                f"{where}: user {name!r} has no argon2 hash; expected name:hash:groups."
            )
        elif not all(is_group_name(group) for group in groups):
            problems.append(f"{where}: user {name!r} has an invalid group name.")
        else:
            accounts[name] = Account(name, password_hash, frozenset(groups))

    if problems:
        raise ConfigError(problems)

    return accounts


def format_users(accounts: dict[str, Account]) -> str:
    """Render accounts as users-file text, sorted by name."""
    lines = [
        f"{account.name}:{account.password_hash}:{','.join(sorted(account.groups))}"
        for account in sorted(accounts.values(), key=lambda account: account.name)
    ]
    return _HEADER + "".join(line + "\n" for line in lines)


def read_users_file(path: Path) -> dict[str, Account]:
    """Read and parse the users file at *path*.

    :raises ConfigError: unreadable file or malformed lines.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the users file ({error}).") from None

    return parse_users(text, str(path))


def update_users_file(path: Path, change: Callable[[dict[str, Account]], None]) -> None:
    """Apply *change* to the accounts in *path* and write them back atomically.

    The whole read-modify-write runs under a file lock, so two commands
    running at once cannot lose each other's changes.
    """
    with locked(path):
        accounts = read_users_file(path) if path.exists() else {}
        change(accounts)
        write_atomic(path, format_users(accounts), mode=0o640)


class UsersFile:
    """The users file as the gate sees it, re-read when it changes on disk.

    A change is noticed within :data:`RELOAD_INTERVAL` seconds.  When the new
    content is broken, the last good accounts stay in use and one error line
    is logged.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._accounts = read_users_file(path)
        self._checked_at = clock()

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            result = self.path.stat()
        except OSError:
            return None

        # ctime too: a chmod or chown that makes the file readable again
        # changes nothing else.
        return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns)

    def accounts(self) -> dict[str, Account]:
        """Return the current accounts, re-reading the file if it changed."""
        now = self._clock()
        # A clock set backwards must not postpone the next check.
        if 0 <= now - self._checked_at < RELOAD_INTERVAL:
            return self._accounts

        with self._lock:
            if not 0 <= now - self._checked_at < RELOAD_INTERVAL:
                self._checked_at = now
                self._reload_if_changed()

        return self._accounts

    def refresh(self) -> dict[str, Account]:
        """Check the file for changes now, whatever the interval says."""
        with self._lock:
            self._checked_at = self._clock()
            self._reload_if_changed()

        return self._accounts

    def _reload_if_changed(self) -> None:
        signature = self._stat()
        if signature == self._signature:
            return

        # Remembered even when the content is broken, so the error is logged
        # once per change rather than once per interval.
        self._signature = signature
        try:
            self._accounts = read_users_file(self.path)
        except ConfigError as error:
            logger.error(
                "users file not reloaded, keeping the last good one: %s", error
            )
            return

        logger.info(
            "users file reloaded: %s (%d users)", self.path, len(self._accounts)
        )


class Accounts:
    """Everyone who can sign in, and the password checks for them.

    :param auth: the ``[auth]`` configuration.
    :param hasher: argon2 parameters; the default is argon2-cffi's.
    """

    def __init__(
        self,
        auth: AuthConfig,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hasher = hasher or PasswordHasher()
        self.users = UsersFile(auth.users_file, clock) if auth.users_file else None
        self.shared: Account | None = None
        if auth.shared_password_hash:
            self.shared = Account(auth.shared_user, auth.shared_password_hash)

        if self.shared and self.users and self.shared.name in self.users.accounts():
            raise ConfigError(
                f"{auth.users_file}: user {self.shared.name!r} has the name of the "
                "shared password's user; rename it or change [auth] shared_user."
            )

        # Unknown names are checked against this hash, so that they cost as
        # much time as known ones.
        self._decoy = self.hasher.hash(secrets.token_urlsafe(18))

    @property
    def has_users(self) -> bool:
        return self.users is not None

    @property
    def has_shared_password(self) -> bool:
        return self.shared is not None

    def find(self, name: str, fresh: bool = False) -> Account | None:
        """Return the account called *name*, or ``None``.

        :param fresh: look at the users file on disk now, not up to
            :data:`RELOAD_INTERVAL` seconds ago.
        """
        if self.shared is not None and name == self.shared.name:
            return self.shared

        if self.users is None:
            return None

        accounts = self.users.refresh() if fresh else self.users.accounts()
        return accounts.get(name)

    def authenticate(self, name: str, password: str) -> Account | None:
        """Return the account if *password* is right for *name*, else ``None``.

        An empty *name* means the shared password.  Exactly one argon2
        verification runs whatever the outcome.  A hash made with older
        parameters is replaced in the users file.
        """
        if name:
            account = None
            if self.users is not None:
                account = self.users.accounts().get(name)
        else:
            account = self.shared

        if not self._verify(
            account.password_hash if account else self._decoy, password
        ):
            return None

        if account is None:
            return None

        return self._rehash_if_needed(account, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _rehash_if_needed(self, account: Account, password: str) -> Account:
        try:
            needed = self.hasher.check_needs_rehash(account.password_hash)
        except InvalidHashError:
            return account

        if not needed:
            return account

        if self.users is None or account is self.shared:
            logger.warning(
                "[auth] shared_password_hash uses old argon2 parameters; "
                "make a new one with 'static-gate hash-password'"
            )
            return account

        new = Account(account.name, self.hasher.hash(password), account.groups)
        stored: list[bool] = []

        def replace(accounts: dict[str, Account]) -> None:
            current = accounts.get(account.name)
            if current is not None and current.password_hash == account.password_hash:
                accounts[account.name] = new
                stored.append(True)

        try:
            update_users_file(self.users.path, replace)
            current = self.users.refresh().get(account.name)
        except (OSError, ConfigError) as error:
            logger.warning(
                "could not store a rehashed password for %r: %s", account.name, error
            )
            return account

        if not stored:
            # Another process changed the hash first (most likely it rehashed
            # the same password): a session must carry what is stored now.
            if current is not None and self._verify(current.password_hash, password):
                return current
            return account

        logger.info(
            "password hash of %r upgraded to current argon2 parameters", account.name
        )
        return new
