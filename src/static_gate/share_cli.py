"""The ``static-gate share`` commands: make, list and revoke share links.

``static-gate share PATH --expires 7d`` prints a link; ``share list`` shows
the live links (never a link itself) and ``share revoke ID`` ends one on every
process and host that shares the state store.  Making a link needs the
signing key and the store; listing and revoking need the store only.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
import time
from collections.abc import Iterator

from .config import Config, load_config
from .errors import ConfigError, StaticGateError, UsageError
from .files import StaticFolder, is_case_sensitive
from .rules import FORBID, RuleSet
from .shares import (
    InvalidShare,
    check_note,
    check_share_path,
    check_share_target,
    check_uses,
    is_share_id,
    make_share,
    make_token,
    parse_expires,
    share_url,
    shell_creator,
)
from .stores import ShareRecord, Store
from .stores.memory import MemoryStore

_USAGE = """
  static-gate share PATH --expires DURATION [--uses N] [--note TEXT]
  static-gate share list
  static-gate share revoke ID"""


def add_share_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: argparse.ArgumentParser,
) -> None:
    """Add the ``share`` command to the ``static-gate`` parser.

    :param commands: the parser's sub-commands.
    :param with_config: the parent parser that adds ``--config``.
    """
    share = commands.add_parser(
        "share",
        parents=[with_config],
        usage=_USAGE,
        help="make, list or revoke links that open one file or folder",
        description="Make a link that lets anyone holding it read one file or "
        "folder until it expires; list or revoke such links.",
    )
    # One positional list rather than sub-commands: "share PATH" and
    # "share list" share a place, and a canonical path always starts with "/".
    share.add_argument(
        "words",
        nargs="+",
        metavar="PATH | list | revoke ID",
        help="the file or folder to share (a folder ends with /), 'list', or "
        "'revoke' and a link's id",
    )
    share.add_argument(
        "--expires",
        metavar="DURATION",
        help='how long the link works, such as "7d" or "12h" (needed with PATH)',
    )
    share.add_argument(
        "--uses",
        type=int,
        metavar="N",
        help="how many times the link may be opened (default: no limit)",
    )
    share.add_argument(
        "--note",
        default="",
        metavar="TEXT",
        help="a reminder shown by 'share list', never to whoever opens the link",
    )
    share.set_defaults(handler=_share)


def _share(args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if words == ["list"]:
        _refuse_link_options(args, "list")
        return _share_list(args)

    if words[0] == "revoke":
        if len(words) != 2:
            raise UsageError("give one link id: static-gate share revoke ID.")

        _refuse_link_options(args, "revoke")
        return _share_revoke(args, words[1])

    if len(words) != 1:
        raise UsageError(
            f"share takes one PATH, got {len(words)} words; quote a path "
            "that holds spaces."
        )

    return _share_path(args, words[0])


def _refuse_link_options(args: argparse.Namespace, command: str) -> None:
    if args.expires is not None or args.uses is not None or args.note:
        raise UsageError(
            f"--expires, --uses and --note go with 'share PATH', not 'share {command}'."
        )


def _share_path(args: argparse.Namespace, typed: str) -> int:
    from .cli import _config_path

    if args.expires is None:
        raise UsageError("share PATH needs --expires, such as --expires 7d.")

    config = load_config(_config_path(args))
    settings = config.share
    try:
        path = check_share_path(typed, config.pages.prefix)
        if config.static.root is not None:
            check_share_target(_folder(config), path)
        lifetime = parse_expires(args.expires, settings.max_expires)
        uses = check_uses(args.uses)
        note = check_note(args.note)
    except InvalidShare as error:
        raise UsageError(str(error)) from None

    decision = _rules(config).decide(path, None)
    if decision.outcome == FORBID:
        raise UsageError(
            f"{path!r} is closed to everyone by the rule for {decision.rule.path!r}; "
            "a link would open nothing."
        )

    record = make_share(
        path, shell_creator(_login()), time.time(), lifetime, uses, note
    )
    with _shared_state(args) as store:
        store.add_share(record)

    print(
        share_url(
            settings.base_url,
            config.pages.prefix,
            make_token(config.session.secret_keys, record.id),
        )
    )
    print(f"static-gate: made share link {_describe(record)}", file=sys.stderr)
    if not settings.base_url:
        print(
            "static-gate: the link is relative to the site; set [share] base_url "
            "to print it whole.",
            file=sys.stderr,
        )

    return 0


def _share_list(args: argparse.Namespace) -> int:
    with _shared_state(args) as store:
        records = store.list_shares(time.time())

    if not records:
        print("no live share links")
        return 0

    print(f"{'id':<22}  {'expires (UTC)':<16}  {'uses left':<9}  {'by':<16}  path")
    for record in records:
        note = f"  ({record.note})" if record.note else ""
        print(
            f"{record.id:<22}  {_when(record.expires)}  {_uses(record):<9}  "
            f"{record.created_by:<16}  {record.path}{note}"
        )

    return 0


def _share_revoke(args: argparse.Namespace, given: str) -> int:
    # The link itself names its id before the signature: accept it as well.
    share_id = given.rsplit("/", 1)[-1].split(".", 1)[0]
    if not is_share_id(share_id):
        raise UsageError(
            f"{given!r} is not a link id; 'static-gate share list' shows them."
        )

    with _shared_state(args) as store:
        revoked = store.revoke_share(share_id)

    if not revoked:
        raise StaticGateError(f"no live share link has the id {share_id!r}.")

    print(f"revoked share link {share_id}")
    return 0


@contextlib.contextmanager
def _shared_state(args: argparse.Namespace) -> Iterator[Store]:
    """Open the configured store, refusing one that lives in a server's memory."""
    # cli imports this module to build its parser: import it late.
    from .cli import _open_state

    with _open_state(args) as store:
        if isinstance(store, MemoryStore):
            raise ConfigError(
                '[state] store is "memory", which lives inside the server '
                "process: links made or revoked here would not reach it; use "
                '"sqlite" or a "redis://" URL.'
            )

        yield store


def _folder(config: Config) -> StaticFolder:
    static = config.static
    assert static.root is not None, "only called in folder mode"
    return StaticFolder(
        static.root,
        static.follow_symlinks,
        static.directory_listing,
        static.precompressed,
    )


def _rules(config: Config) -> RuleSet:
    case_sensitive = config.static.case_sensitive
    if case_sensitive is None and config.static.root is not None:
        case_sensitive = is_case_sensitive(config.static.root)

    return RuleSet(config.rules, case_sensitive is not False)


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        # No login name in the environment or the password database.
        return "shell"


def _describe(record: ShareRecord) -> str:
    return (
        f"{record.id} for {record.path}: expires {_when(record.expires)} UTC, "
        f"uses left {_uses(record)}"
    )


def _uses(record: ShareRecord) -> str:
    return "no limit" if record.uses_left is None else str(record.uses_left)


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))
