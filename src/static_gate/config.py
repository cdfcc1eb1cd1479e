"""Read the TOML configuration once, check all of it, return frozen objects.

Every problem is collected and reported together in a :class:`ConfigError`,
one line each, naming the file, the table and key, what was found and what is
expected.  Relative paths are resolved against the configuration file's
folder.  Signing keys are never read from this file (see :mod:`.keys`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._compat import tomllib
from .errors import ConfigError
from .keys import SecretKey, load_keys
from .paths import PathRejected, canonical_path, is_under
from .rules import ALLOW_VALUES, ANYONE, LISTED, Rule
from .shares import ShareConfig
from .tables import Reader, Table
from .throttle import ThrottleConfig
from .trail import TrailConfig

#: Environment variable naming the configuration file.
CONFIG_ENV = "STATIC_GATE_CONFIG"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Values of ``[static] offload``.
OFFLOAD_MODES = ("none", "x-accel-redirect", "x-sendfile")

#: Every table and the keys it takes; ``rules`` is an array of tables.
KEYS: dict[str, tuple[str, ...]] = {
    "static": (
        "root",
        "follow_symlinks",
        "directory_listing",
        "precompressed",
        "case_sensitive",
        "offload",
        "offload_prefix",
    ),
    "pages": ("prefix", "title", "message", "template"),
    "auth": ("users_file", "shared_password_hash", "shared_user"),
    "session": (
        "secret_file",
        "lifetime",
        "idle_timeout",
        "cookie_name",
        "secure_cookie",
        "remember_lifetime",
        "remember_idle_timeout",
    ),
    "proxy": ("trusted", "user_header"),
    "state": ("store", "read_during_outage"),
    "throttle": ("max_failures", "window", "concurrent_checks", "check_wait"),
    "trail": ("file", "hash_addresses"),
    "share": ("base_url", "creators", "max_expires"),
    "rules": ("path", "allow", "users", "groups", "cache_control"),
}


@dataclass(frozen=True)
class StaticConfig:
    """``[static]``: the folder to serve and how."""

    root: Path | None = None
    follow_symlinks: bool = False
    directory_listing: bool = False
    precompressed: bool = True
    #: ``None`` means "find out from the file system at start-up".
    case_sensitive: bool | None = None
    #: Who sends the bytes: the gate (``"none"``), or the front server after
    #: an ``"x-accel-redirect"`` (nginx) or ``"x-sendfile"`` (Apache).
    offload: str = "none"
    #: The internal nginx location that maps to ``root``.
    offload_prefix: str = "/_protected/"


@dataclass(frozen=True)
class PagesConfig:
    """``[pages]``: where the gate's own pages live and how they look."""

    prefix: str = "/_gate/"
    title: str = "Sign in"
    message: str = ""
    template: Path | None = None


@dataclass(frozen=True)
class AuthConfig:
    """``[auth]``: who can sign in."""

    users_file: Path | None = None
    shared_password_hash: str | None = None
    shared_user: str = "shared"


@dataclass(frozen=True)
class SessionConfig:
    """``[session]``: the signed cookie."""

    secret_keys: tuple[SecretKey, ...]
    secret_file: Path | None = None
    lifetime: int = 8 * 3600
    idle_timeout: int = 30 * 60
    cookie_name: str = "static_gate"
    #: ``None`` means Secure exactly when the request came over https.
    secure_cookie: bool | None = None
    #: Lifetimes of a "keep me signed in" session; ``None``: not offered.
    remember_lifetime: int | None = None
    remember_idle_timeout: int | None = None


@dataclass(frozen=True)
class ProxyConfig:
    """``[proxy]``: which direct peers may speak for the client."""

    trusted: tuple[IPNetwork, ...] = ()
    #: Name signed-in users in ``X-Static-Gate-User`` on content answers,
    #: for a front server's access log (which should then remove it).
    user_header: bool = False


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: where sessions and failure counts are shared."""

    #: ``"sqlite"``, ``"sqlite:PATH"``, ``"memory"`` or a ``redis://`` URL.
    store: str = "sqlite"
    #: Keep serving signed-in users while the store is out of reach.
    read_during_outage: bool = False
    #: The folder for the default SQLite file: ``state`` beside the config.
    folder: Path = Path("state")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    source: Path | None
    session: SessionConfig
    static: StaticConfig = StaticConfig()
    pages: PagesConfig = PagesConfig()
    auth: AuthConfig = AuthConfig()
    proxy: ProxyConfig = ProxyConfig()
    rules: tuple[Rule, ...] = ()
    state: StateConfig = StateConfig()
    throttle: ThrottleConfig = ThrottleConfig()
    trail: TrailConfig = TrailConfig()
    share: ShareConfig = ShareConfig()


_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_user_name(name: str) -> bool:
    """Tell whether *name* can be a user name (letters, digits, ``._@+-``)."""
    return _USER_NAME.fullmatch(name) is not None


def is_group_name(name: str) -> bool:
    """Tell whether *name* can be a group name (letters, digits, ``._-``)."""
    return _GROUP_NAME.fullmatch(name) is not None


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    need_keys: bool = True,
) -> Config:
    """Read, check and return the configuration in the file at *path*.

    :param environ: where to look for ``STATIC_GATE_SECRET_KEY``; defaults
        to :data:`os.environ`.
    :param need_keys: ``False`` for tools that sign nothing, such as the
        session commands; the keys are then neither read nor checked.
    :raises ConfigError: listing every problem found.
    """
    source = Path(path).absolute()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{source}: cannot read the configuration file ({error.strerror})."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the configuration file is not UTF-8.") from None

    environ = os.environ if environ is None else environ
    return parse_config(text, source, environ, need_keys)


def parse_config(
    text: str, source: Path, environ: Mapping[str, str], need_keys: bool = True
) -> Config:
    """Check configuration *text* read from *source*; see :func:`load_config`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML ({error}).") from None

    reader = Reader(source.name, source.parent)
    for key in sorted(set(data) - set(KEYS)):
        reader.problems.append(
            f"{reader.name}: [{key}] is not a known table; "
            f"use {', '.join(sorted(KEYS))}."
        )

    static = _read_static(reader, data)
    pages = _read_pages(reader, data)
    auth = _read_auth(reader, data)
    session_table = reader.table(data, "session", KEYS["session"])
    proxy = _read_proxy(reader, data)
    state = _read_state(reader, data)
    throttle = _read_throttle(reader, data)
    trail = _read_trail(reader, data)
    share = _read_share(reader, data)
    rules = _read_rules(reader, data, pages.prefix, static.root)

    secret_file = session_table.path("secret_file")
    keys: tuple[SecretKey, ...] = ()
    try:
        if need_keys:
            keys = load_keys(secret_file, environ, reader.name)
    except ConfigError as error:
        reader.problems.extend(error.problems)

    session = _read_session(session_table, keys, secret_file)
    if reader.problems:
        raise ConfigError(reader.problems)

    return Config(
        source,
        session,
        static=static,
        pages=pages,
        auth=auth,
        proxy=proxy,
        rules=rules,
        state=state,
        throttle=throttle,
        trail=trail,
        share=share,
    )


def _read_static(reader: Reader, data: Mapping[str, Any]) -> StaticConfig:
    table = reader.table(data, "static", KEYS["static"])
    root = table.path("root")
    if root is not None:
        if not root.is_dir():
            table.problem("root", f"must be an existing folder, got {str(root)!r}")
        else:
            root = root.resolve()

    case_sensitive = table.data.get("case_sensitive")
    if case_sensitive is not None and not isinstance(case_sensitive, bool):
        table.problem(
            "case_sensitive", f"must be true or false, got {case_sensitive!r}"
        )
        case_sensitive = None

    offload = table.text("offload", "none")
    if offload not in OFFLOAD_MODES:
        choices = ", ".join(repr(mode) for mode in OFFLOAD_MODES)
        table.problem("offload", f"must be one of {choices}, got {offload!r}")
        offload = "none"

    offload_prefix = table.text("offload_prefix", "/_protected/")
    if not _is_canonical_folder(offload_prefix) or offload_prefix == "/":
        table.problem(
            "offload_prefix",
            f'must be a folder path such as "/_protected/", got {offload_prefix!r}',
        )

    return StaticConfig(
        offload=offload,
        offload_prefix=offload_prefix,
        root=root,
        follow_symlinks=table.flag("follow_symlinks", False),
        directory_listing=table.flag("directory_listing", False),
        precompressed=table.flag("precompressed", True),
        case_sensitive=case_sensitive,
    )


def _read_pages(reader: Reader, data: Mapping[str, Any]) -> PagesConfig:
    table = reader.table(data, "pages", KEYS["pages"])
    prefix = table.text("prefix", "/_gate/")
    if not _is_canonical_folder(prefix) or prefix == "/":
        table.problem(
            "prefix", f'must be a folder path such as "/_gate/", got {prefix!r}'
        )
        prefix = "/_gate/"

    template = table.path("template")
    if template is not None and not template.is_file():
        table.problem("template", f"must be an existing file, got {str(template)!r}")

    return PagesConfig(
        prefix=prefix,
        title=table.text("title", "Sign in"),
        message=table.text("message", ""),
        template=template,
    )


def _read_auth(reader: Reader, data: Mapping[str, Any]) -> AuthConfig:
    table = reader.table(data, "auth", KEYS["auth"])
    users_file = table.path("users_file")
    if users_file is not None and not users_file.is_file():
        table.problem(
            "users_file",
            f"must be an existing file, got {str(users_file)!r}; "
            "create it with 'static-gate user add NAME'",
        )

    shared = table.text("shared_password_hash", "") or None
    if shared is not None and not shared.startswith("$argon2"):
        table.problem(
            "shared_password_hash",
            "must be an argon2 hash made by 'static-gate hash-password', "
            "not a password",
        )

    if users_file is None and shared is None:
        reader.problems.append(
            f"{reader.name}: [auth] has neither users_file nor "
            "shared_password_hash, so nobody could sign in; set at least one."
        )

    shared_user = table.text("shared_user", "shared")
    if not is_user_name(shared_user):
        table.problem("shared_user", f"must be a valid user name, got {shared_user!r}")

    return AuthConfig(users_file, shared, shared_user)


def _read_session(
    table: Table, keys: tuple[SecretKey, ...], secret_file: Path | None
) -> SessionConfig:
    lifetime = table.duration("lifetime", 8 * 3600)
    idle_timeout = table.duration("idle_timeout", 30 * 60)
    if idle_timeout > lifetime:
        table.problem(
            "idle_timeout",
            f"({idle_timeout} s) is longer than [session] lifetime ({lifetime} s); "
            "make it shorter or equal",
        )

    cookie_name = table.text("cookie_name", "static_gate")
    if not _COOKIE_NAME.fullmatch(cookie_name) or cookie_name.startswith("__"):
        table.problem(
            "cookie_name",
            f"must be letters, digits, '-' or '_' without a leading '__', "
            f"got {cookie_name!r}",
        )

    secure = table.data.get("secure_cookie", "auto")
    if secure == "auto":
        secure = None
    elif not isinstance(secure, bool):
        table.problem("secure_cookie", f'must be "auto", true or false, got {secure!r}')
        secure = None

    remember_lifetime = None
    remember_idle_timeout = None
    if "remember_lifetime" in table.data:
        remember_lifetime = table.duration("remember_lifetime", lifetime)
        if remember_lifetime < lifetime:
            table.problem(
                "remember_lifetime",
                f"({remember_lifetime} s) is shorter than [session] lifetime "
                f"({lifetime} s); keeping someone signed in must last longer",
            )
        remember_idle_timeout = table.duration(
            "remember_idle_timeout", min(remember_lifetime, 7 * 86400)
        )
        if remember_idle_timeout > remember_lifetime:
            table.problem(
                "remember_idle_timeout",
                f"({remember_idle_timeout} s) is longer than [session] "
                f"remember_lifetime ({remember_lifetime} s); make it shorter or equal",
            )
    elif "remember_idle_timeout" in table.data:
        table.problem(
            "remember_idle_timeout", "needs [session] remember_lifetime as well"
        )

    return SessionConfig(
        keys,
        secret_file,
        lifetime,
        idle_timeout,
        cookie_name,
        secure,
        remember_lifetime,
        remember_idle_timeout,
    )


def _read_proxy(reader: Reader, data: Mapping[str, Any]) -> ProxyConfig:
    table = reader.table(data, "proxy", KEYS["proxy"])
    networks: list[IPNetwork] = []
    values = table.data.get("trusted", [])
    if not isinstance(values, list):
        table.problem("trusted", f"must be a list of addresses, got {values!r}")
        values = []

    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            table.problem(
                "trusted",
                f'has {value!r}; use addresses or networks such as "127.0.0.1" '
                'or "10.0.0.0/8"',
            )

    return ProxyConfig(tuple(networks), table.flag("user_header", False))


def _read_state(reader: Reader, data: Mapping[str, Any]) -> StateConfig:
    table = reader.table(data, "state", KEYS["state"])
    store = table.text("store", "sqlite")
    kinds = ("sqlite", "memory")
    if not (
        store in kinds
        or store.startswith(("sqlite:", "redis://", "rediss://", "unix://"))
    ):
        table.problem(
            "store",
            f'must be "sqlite", "sqlite:PATH", "memory" or a "redis://" URL, '
            f"got {store!r}",
        )
        store = "sqlite"

    if store.startswith("sqlite:"):
        # A relative file is relative to the configuration, like every path.
        store = "sqlite:" + str(reader.folder / os.path.expanduser(store[7:]))

    return StateConfig(
        store=store,
        read_during_outage=table.flag("read_during_outage", False),
        folder=reader.folder / "state",
    )


def _read_throttle(reader: Reader, data: Mapping[str, Any]) -> ThrottleConfig:
    table = reader.table(data, "throttle", KEYS["throttle"])
    numbers = {}
    for key, default in (("max_failures", 5), ("concurrent_checks", 1)):
        value = table.get(key, int, "a whole number", default)
        if isinstance(value, bool) or value < 1:
            table.problem(key, f"must be a whole number of 1 or more, got {value!r}")
            value = default
        numbers[key] = value

    return ThrottleConfig(
        max_failures=numbers["max_failures"],
        window=table.duration("window", 15 * 60),
        concurrent_checks=numbers["concurrent_checks"],
        check_wait=table.duration("check_wait", 2),
    )


def _read_share(reader: Reader, data: Mapping[str, Any]) -> ShareConfig:
    table = reader.table(data, "share", KEYS["share"])
    base_url = table.text("base_url", "")
    if base_url and not _is_base_url(base_url):
        table.problem(
            "base_url",
            'must be the address the site is reached at, such as "https://example.org" '
            'or "https://example.org/reports", without a query, fragment or user '
            f"name, got {base_url!r}",
        )
        base_url = ""

    return ShareConfig(
        base_url=base_url.rstrip("/"),
        creators=table.names("creators", is_group_name, "group name"),
        max_expires=table.duration("max_expires", 30 * 86400),
    )


def _is_base_url(text: str) -> bool:
    if not text.isascii() or not text.isprintable() or any(c in text for c in " ?#@"):
        return False

    try:
        parts = urlsplit(text)
        # .port raises ValueError for a port that is not a number up to 65535.
        return (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0
        )
    except ValueError:
        return False


def _read_trail(reader: Reader, data: Mapping[str, Any]) -> TrailConfig:
    table = reader.table(data, "trail", KEYS["trail"])
    return TrailConfig(
        file=table.path("file"),
        hash_addresses=table.flag("hash_addresses", False),
    )


def _read_rules(
    reader: Reader, data: Mapping[str, Any], gate_prefix: str, root: Path | None
) -> tuple[Rule, ...]:
    entries = data.get("rules", [])
    if not isinstance(entries, list):
        reader.problems.append(f"{reader.name}: rules must be [[rules]] tables.")
        return ()

    rules: list[Rule] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            reader.problems.append(f"{reader.name}: rule {number} must be a table.")
            continue

        rule = _read_rule(reader, number, entry, gate_prefix)
        if rule is None:
            continue

        if root is not None and not rule.is_folder and (root / rule.path[1:]).is_dir():
            # Without the slash the rule would cover the folder's own path
            # only, and the files in it would fall to other rules.
            reader.problems.append(
                f"{reader.name}: [[rules]] {number} path {rule.path!r} is a folder; "
                f'write "{rule.path}/" to cover everything in it.'
            )
            continue

        # Compared without case: where the file system ignores case, two
        # such rules would cover the same files.
        if rule.path.lower() in seen:
            reader.problems.append(
                f"{reader.name}: [[rules]] {number} repeats path {rule.path!r}; "
                "each path may have one rule only, whatever its case."
            )
            continue

        seen.add(rule.path.lower())
        rules.append(rule)

    return tuple(rules)


def _read_rule(
    reader: Reader, number: int, entry: Mapping[str, Any], gate_prefix: str
) -> Rule | None:
    table = Table(
        reader,
        f"[[rules]] {number}",
        entry,
        set(KEYS["rules"]),
    )
    before = len(reader.problems)

    path = table.text("path", "")
    if not path or not _is_canonical(path):
        table.problem(
            "path",
            f'must be a canonical path such as "/reports/" (a folder) or '
            f'"/index.html" (one file), got {path!r}',
        )
    elif is_under(path, gate_prefix):
        table.problem(
            "path", f"{path!r} overlaps the gate's own pages at {gate_prefix!r}"
        )

    users = table.names("users", is_user_name, "user name")
    groups = table.names("groups", is_group_name, "group name")
    allow = table.text("allow", "")
    if allow and (users or groups):
        table.problem(
            "allow", f"{allow!r} contradicts users/groups; give allow or the lists"
        )
    elif not allow and not (users or groups):
        if "users" in entry or "groups" in entry:
            table.problem("users", "and groups are empty, so nobody could read")
        allow = "signed-in"
    elif allow and allow not in ALLOW_VALUES:
        choices = ", ".join(repr(value) for value in ALLOW_VALUES)
        table.problem("allow", f"must be one of {choices}, got {allow!r}")

    cache_control = table.text("cache_control", "") or None
    if cache_control is not None and allow != ANYONE:
        table.problem(
            "cache_control",
            'is only allowed with allow = "anyone"; protected pages are never cached',
        )
    elif cache_control is not None and not cache_control.isprintable():
        table.problem("cache_control", "must be printable text")

    if len(reader.problems) > before:
        return None

    return Rule(
        path=path,
        allow=allow if allow else LISTED,
        users=users,
        groups=groups,
        cache_control=cache_control,
    )


def _is_canonical(path: str) -> bool:
    try:
        return canonical_path(path) == path
    except PathRejected:
        return False


def _is_canonical_folder(path: str) -> bool:
    return path.endswith("/") and _is_canonical(path)


def users_file_setting(path: str | os.PathLike[str]) -> Path | None:
    """Return ``[auth] users_file`` from the file at *path*, resolved.

    The user commands need only the ``[auth]`` table, and must work where the
    signing key is not available (it may live in the server's environment).

    :raises ConfigError: the file cannot be read or is not TOML.
    """
    source, auth = _read_auth_table(path)
    value = auth.get("users_file")
    if not isinstance(value, str) or not value:
        return None

    return source.parent / os.path.expanduser(value)


def shared_user_setting(path: str | os.PathLike[str]) -> str | None:
    """Return the shared password's user name, or ``None`` without one.

    :raises ConfigError: the file cannot be read or is not TOML.
    """
    _, auth = _read_auth_table(path)
    if not auth.get("shared_password_hash"):
        return None

    name = auth.get("shared_user", "shared")
    return name if isinstance(name, str) else "shared"


def _read_auth_table(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    return read_one_table(path, "auth")


def read_one_table(
    path: str | os.PathLike[str], name: str
) -> tuple[Path, dict[str, Any]]:
    """Return the configuration file's absolute path and its table *name*.

    For commands that need one table only and must work where the rest (the
    signing key, the served folder) is not available.

    :raises ConfigError: the file cannot be read or is not TOML.
    """
    source = Path(path).absolute()
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            f"{source}: cannot read the configuration file ({error.strerror})."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the configuration file is not UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML ({error}).") from None

    table = data.get(name, {})
    return source, table if isinstance(table, dict) else {}
