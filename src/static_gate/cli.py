"""The ``static-gate`` command: set up, check and serve a gate.

Every failure is one line on stderr.  Exit status: 0 on success, 2 for
usage and configuration errors, 1 for anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from argon2 import PasswordHasher

from .audit_cli import add_audit_command
from .config import (
    CONFIG_ENV,
    Config,
    is_group_name,
    is_user_name,
    load_config,
    shared_user_setting,
    users_file_setting,
)
from .credentials import (
    Account,
    Accounts,
    check_password_strength,
    read_users_file,
    update_users_file,
)
from .errors import ConfigError, StaticGateError, UsageError
from .keys import generate_key
from .paths import PathRejected, canonical_path, is_under
from .rules import RuleSet
from .scaffold import create_site
from .share_cli import add_share_commands
from .shares import format_duration
from .stores import Store, StoreError, open_store
from .stores.sqlite import SqliteStore

DEFAULT_CONFIG = "gate.toml"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        # argparse has printed its usage message or --help already.
        return 0 if exit.code is None else int(exit.code)

    try:
        result: int = args.handler(args)
    except (ConfigError, UsageError) as error:
        for line in str(error).splitlines():
            print(f"static-gate: {line}", file=sys.stderr)
        return 2
    except StaticGateError as error:
        print(f"static-gate: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 1

    return result


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="static-gate",
        description="Put a login page in front of a folder of static files.",
    )
    commands = parser.add_subparsers(title="commands", required=True)
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default: ${CONFIG_ENV} or ./{DEFAULT_CONFIG})",
    )

    init = commands.add_parser(
        "init", help="create a configuration, key and users file"
    )
    init.add_argument("folder", nargs="?", default=".", help="where to create them")
    init.add_argument("--root", help="folder to serve (default: a new 'site' folder)")
    init.add_argument(
        "--shared-password",
        action="store_true",
        help="ask for one shared password instead of using named users",
    )
    init.set_defaults(handler=_init)

    serve = commands.add_parser(
        "serve", parents=[with_config], help="serve with waitress"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--threads", type=int, default=8, help="worker threads (default: 8)"
    )
    serve.set_defaults(handler=_serve)

    hash_password = commands.add_parser(
        "hash-password", help="print an argon2 hash for [auth] shared_password_hash"
    )
    hash_password.set_defaults(handler=_hash_password)

    user = commands.add_parser("user", help="manage the users file")
    user_commands = user.add_subparsers(title="user commands", required=True)
    add = user_commands.add_parser("add", parents=[with_config], help="add a user")
    add.add_argument("name")
    add.add_argument("--group", action="append", default=[], help="repeat for several")
    add.set_defaults(handler=_user_add)
    passwd = user_commands.add_parser(
        "passwd", parents=[with_config], help="change a password; ends their sessions"
    )
    passwd.add_argument("name")
    passwd.set_defaults(handler=_user_passwd)
    remove = user_commands.add_parser(
        "remove", parents=[with_config], help="remove a user; ends their sessions"
    )
    remove.add_argument("name")
    remove.set_defaults(handler=_user_remove)
    listing = user_commands.add_parser("list", parents=[with_config], help="list users")
    listing.set_defaults(handler=_user_list)
    user_logout = user_commands.add_parser(
        "logout", parents=[with_config], help="end every session of a user"
    )
    user_logout.add_argument("name")
    user_logout.set_defaults(handler=_user_logout)

    sessions = commands.add_parser(
        "sessions", parents=[with_config], help="list open sessions"
    )
    sessions.add_argument("--user", help="only this user's sessions")
    sessions.set_defaults(handler=_sessions_list)
    session_commands = sessions.add_subparsers(title="session commands")
    revoke = session_commands.add_parser("revoke", help="end one session, by its id")
    # Not inherited: a default here would replace a --config given before
    # the subcommand.
    revoke.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    revoke.add_argument("id", help="the session id that 'sessions' lists")
    revoke.set_defaults(handler=_sessions_revoke)

    check = commands.add_parser(
        "check", parents=[with_config], help="validate the configuration, show rules"
    )
    check.set_defaults(handler=_check)

    explain = commands.add_parser(
        "explain", parents=[with_config], help="show which rule decides a path, and why"
    )
    explain.add_argument("path")
    explain.add_argument("--user", help="decide for this user (default: not signed in)")
    explain.set_defaults(handler=_explain)

    secret = commands.add_parser("secret", help="print a new random signing key")
    secret.set_defaults(handler=_secret)

    add_share_commands(commands, with_config)
    add_audit_command(commands, with_config)
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def read_new_password(prompt: str = "Password") -> str:
    """Read a new password: twice without echo at a terminal, else one stdin line.

    :raises UsageError: the two entries differ, or the password is too weak.
    """
    if sys.stdin.isatty():
        password = getpass.getpass(f"{prompt}: ")
        if getpass.getpass(f"{prompt} (again): ") != password:
            raise UsageError("the two passwords differ; nothing was changed.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    try:
        check_password_strength(password)
    except ValueError as error:
        raise UsageError(f"{error}; nothing was changed.") from None

    return password


def _init(args: argparse.Namespace) -> int:
    shared_hash = None
    if args.shared_password:
        shared_hash = PasswordHasher().hash(read_new_password("Shared password"))

    created = create_site(Path(args.folder), args.root, shared_hash)
    for path in created:
        print(f"created {path}")

    config = created[0]
    print(f"\nNext: check it with 'static-gate check --config {config}'")
    if shared_hash is None:
        print(f"      add a user with 'static-gate user add NAME --config {config}'")
    print(f"      serve it with 'static-gate serve --config {config}'")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import waitress

    from .accesslog import AccessLog
    from .reload import ReloadingGate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    reloading = ReloadingGate(_config_path(args))
    # A share link's token is a password: keep it out of the log.
    gate = AccessLog(reloading, secret_prefix=reloading.current.prefix + "share/")
    try:
        server = waitress.create_server(
            gate,
            host=args.host,
            port=args.port,
            threads=args.threads,
            ident="static-gate",
        )
    except OSError as error:
        raise StaticGateError(
            f"cannot listen on {args.host}:{args.port} ({error.strerror})."
        ) from None

    # Printed once the port is bound, so the URL line means it is serving.
    print(
        f"static-gate: serving on http://{_url_host(args.host)}:{args.port}/",
        flush=True,
    )
    server.run()  # returns on Ctrl-C or SIGTERM, after closing the sockets
    print("static-gate: stopped", file=sys.stderr)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hash_password(args: argparse.Namespace) -> int:
    print(PasswordHasher().hash(read_new_password()))
    return 0


def _users_file(args: argparse.Namespace) -> Path:
    path = users_file_setting(_config_path(args))
    if path is None:
        raise ConfigError(
            f"{_config_path(args)}: [auth] users_file is not set; "
            'add users_file = "users.txt" to use named users.'
        )

    return path


def _user_add(args: argparse.Namespace) -> int:
    if not is_user_name(args.name):
        raise UsageError(
            f"{args.name!r} is not a valid user name: use up to 64 letters, digits "
            "and . _ @ + -, starting with a letter or digit."
        )

    bad = [group for group in args.group if not is_group_name(group)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a valid group name.")

    path = _users_file(args)
    if args.name == shared_user_setting(_config_path(args)):
        raise UsageError(
            f"{args.name!r} is the name of the shared password's user "
            "([auth] shared_user); choose another name."
        )

    if args.name in _read_if_exists(path):
        raise StaticGateError(f"user {args.name!r} already exists; use 'user passwd'.")

    account = Account(
        args.name, PasswordHasher().hash(read_new_password()), frozenset(args.group)
    )

    def add(accounts: dict[str, Account]) -> None:
        if account.name in accounts:
            raise StaticGateError(f"user {account.name!r} already exists.")
        accounts[account.name] = account

    update_users_file(path, add)
    print(f"added {args.name}")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    path = _users_file(args)
    _require_user(path, args.name)
    new_hash = PasswordHasher().hash(read_new_password("New password"))

    def change(accounts: dict[str, Account]) -> None:
        old = accounts.get(args.name)
        if old is None:
            raise StaticGateError(f"user {args.name!r} does not exist.")
        accounts[args.name] = Account(old.name, new_hash, old.groups)

    update_users_file(path, change)
    print(f"changed the password of {args.name}; their sessions have ended")
    return 0


def _user_remove(args: argparse.Namespace) -> int:
    path = _users_file(args)
    _require_user(path, args.name)

    def remove(accounts: dict[str, Account]) -> None:
        if accounts.pop(args.name, None) is None:
            raise StaticGateError(f"user {args.name!r} does not exist.")

    update_users_file(path, remove)
    print(f"removed {args.name}; their sessions have ended")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    for account in sorted(
        _read_if_exists(_users_file(args)).values(), key=lambda account: account.name
    ):
        groups = ", ".join(sorted(account.groups)) or "-"
        print(f"{account.name}\t{groups}")
    return 0


def _user_logout(args: argparse.Namespace) -> int:
    with _open_state(args) as store:
        ended = store.remove_user_sessions(args.name)
    print(f"ended {ended} session(s) of {args.name}")
    return 0


@contextlib.contextmanager
def _open_state(args: argparse.Namespace) -> Iterator[Store]:
    """Open the configured state store, or fail with one line."""
    config = load_config(_config_path(args), need_keys=False)
    try:
        store = open_store(config.state.store, config.state.folder, create=False)
        store.check()
    except StoreError as error:
        raise ConfigError(f"[state] store cannot be used: {error}.") from None

    try:
        yield store
    except StoreError as error:
        raise StaticGateError(f"the state store failed: {error}.") from None
    finally:
        store.close()


def _sessions_list(args: argparse.Namespace) -> int:
    with _open_state(args) as store:
        records = store.list_sessions(time.time(), args.user)

    if not records:
        print("no open sessions")
        return 0

    print(f"{'id':<24}  {'user':<16} {'client':<15}  {'started':<16}  last seen")
    for record in records:
        print(
            f"{record.handle:<24}  {record.user:<16} {record.client:<15}  "
            f"{_when(record.started)}  {_when(record.last_seen)}"
        )
    return 0


def _sessions_revoke(args: argparse.Namespace) -> int:
    with _open_state(args) as store:
        ended = store.remove_session(args.id)

    if not ended:
        raise StaticGateError(f"no open session has the id {args.id!r}.")

    print(f"ended session {args.id}")
    return 0


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def _read_if_exists(path: Path) -> dict[str, Account]:
    return read_users_file(path) if path.exists() else {}


def _require_user(path: Path, name: str) -> None:
    if name not in _read_if_exists(path):
        raise StaticGateError(f"user {name!r} does not exist in {path}.")


def _check(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    accounts = _accounts_for(config)
    description = _try_state(config)
    print(f"{config.source}: valid")
    for line in describe_config(config, accounts):
        print(line)
    print(f"  state     {description}")
    return 0


def _try_state(config: Config) -> str:
    """Prove the store can be used, leaving nothing behind; describe it.

    A SQLite file that does not exist yet is created and removed again
    (with any folders made for it), so that ``check`` run by root never
    leaves a store the server's user cannot write.
    """
    state = config.state
    store = open_store(state.store, state.folder)
    trial = isinstance(store, SqliteStore) and not store.path.exists()
    made: list[Path] = []
    if isinstance(store, SqliteStore) and trial:
        folder = store.path.parent
        while not folder.exists() and folder != folder.parent:
            made.append(folder)
            folder = folder.parent

    try:
        store.check()
    except StoreError as error:
        raise ConfigError(f"[state] store cannot be used: {error}.") from None
    finally:
        store.close()
        if isinstance(store, SqliteStore) and trial:
            _remove_trial(store.path, made)

    if trial:
        return f"{store.description} (made when the gate first starts)"

    return store.description


def _remove_trial(path: Path, folders: list[Path]) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        with contextlib.suppress(OSError):
            (path.parent / name).unlink()

    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _accounts_for(config: Config) -> Accounts:
    # The cheapest argon2 parameters: only the decoy hash is computed here.
    return Accounts(
        config.auth, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


def describe_config(config: Config, accounts: Accounts) -> list[str]:
    """Return the effective settings and rules, as lines for ``check``."""
    static, session = config.static, config.session
    lines = []
    if static.root is not None:
        lines.append(
            f"  serving   {static.root} (symlinks "
            f"{'followed' if static.follow_symlinks else 'refused'}, folder listings "
            f"{'on' if static.directory_listing else 'off'})"
        )
    else:
        lines.append("  serving   the application this gate wraps")

    if accounts.users is not None:
        count = len(accounts.users.accounts())
        lines.append(f"  users     {accounts.users.path} ({count} users)")
    if accounts.shared is not None:
        lines.append(f"  shared    password on, signs in as {accounts.shared.name!r}")

    secure = {None: "when https", True: "always", False: "never"}[session.secure_cookie]
    lines.append(
        f"  session   lifetime {session.lifetime} s, idle timeout "
        f"{session.idle_timeout} s, secure cookie {secure}, "
        f"{len(session.secret_keys)} signing key(s)"
    )
    lines.append(f"  pages     {config.pages.prefix}")
    share = config.share
    makers = "at the shell"
    if share.creators:
        groups = ", ".join(sorted(share.creators))
        makers += f" and on {config.pages.prefix}shares by group(s) {groups}"
    lines.append(
        f"  shares    made {makers}, lasting {format_duration(share.max_expires)} "
        "at most"
    )
    lines.append("rules (the most specific path wins):")
    for rule in config.rules:
        cache = f"  [Cache-Control: {rule.cache_control}]" if rule.cache_control else ""
        lines.append(f"  {rule.path:<28} {rule.describe()}{cache}")
    lines.append(f"  {'(any other path)':<28} any signed-in user")
    return lines


def _explain(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    try:
        # canonical_path takes a WSGI string: the path's bytes as Latin-1.
        # surrogateescape gives back the bytes of an argument that is not UTF-8.
        raw = args.path.encode("utf-8", "surrogateescape").decode("latin-1")
        path = canonical_path(raw)
    except PathRejected as error:
        print(
            f"path      {args.path!r}\ndecision  refused with {error.status}: "
            f"{error.reason}"
        )
        return 0

    if path != args.path:
        print(f"path      {args.path!r} is redirected to {path!r} first")

    if is_under(path, config.pages.prefix):
        print(
            f"path      {path}\nrule      the gate's own pages at "
            f"{config.pages.prefix!r}, open to anyone"
        )
        print("decision  allow: sign-in and sign-out pages")
        return 0

    groups: frozenset[str] = frozenset()
    if args.user is not None:
        account = _accounts_for(config).find(args.user)
        if account is None:
            raise StaticGateError(f"user {args.user!r} does not exist.")
        groups = account.groups

    case_sensitive = config.static.case_sensitive
    if case_sensitive is None and config.static.root is not None:
        from .files import is_case_sensitive

        case_sensitive = is_case_sensitive(config.static.root)

    decision = RuleSet(config.rules, case_sensitive is not False).decide(
        path, args.user, groups
    )
    rule = "none; the default applies" if decision.default else repr(decision.rule.path)
    who = args.user or "(not signed in)"
    if groups:
        who += f" (groups: {', '.join(sorted(groups))})"
    print(
        f"path      {path}\nuser      {who}\nrule      {rule}, "
        f"which lets in {decision.rule.describe()}"
    )
    print(f"decision  {decision.outcome}: {decision.reason}")
    return 0


def _secret(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0
