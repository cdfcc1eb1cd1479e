"""Share links: a signed id that lets whoever holds it read one path.

A link is ``<base_url><prefix>share/<token>``.  The token is the link's random
id signed with the gate's key (HMAC-SHA256 with its own salt), so it cannot be
guessed or altered, and the id alone, as ``static-gate share list`` shows it,
opens nothing.  What the id stands for (the path, the expiry, the uses left)
lives in the state store, so revoking a link ends it on every process and host
at once.

Opening a link spends one use and swaps the token for a cookie that is signed
with another salt, names the link and its path, expires after
:data:`SHARE_COOKIE_LIFETIME` at most, and is sent by the browser for the
shared path only.  The gate still asks the store on every request, so a
revoked link stops working in browsers that opened it, too.

Everything here is pure: keys, paths and the time are passed in.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, Signer

from .files import ADD_SLASH, FILE
from .keys import SecretKey
from .paths import PathRejected, canonical_path, is_under, quote_path
from .rules import ALLOW, FORBID, LOGIN, Decision, RuleSet
from .session import make_signer
from .stores import ShareRecord
from .tables import parse_duration

if TYPE_CHECKING:
    from .credentials import Account
    from .files import StaticFolder

#: Longest a browser keeps reading after opening a link, in seconds.  A link
#: that lasts a week still has to be opened again after this; each opening
#: spends a use.
SHARE_COOKIE_LIFETIME = 12 * 3600

#: Longest note kept with a link, in characters.
MAX_NOTE_LENGTH = 200

#: ``created_by`` of a link made at the shell starts with this; no user name
#: can (see :func:`static_gate.config.is_user_name`).
SHELL_MARK = "@"

_TOKEN_SALT = "static-gate.share"
_COOKIE_SALT = "static-gate.share-cookie"
_COOKIE_FORMAT = "1"
_SEPARATOR = "|"

# 16 random bytes in URL-safe base64: what new_share_id() makes.
_SHARE_ID = re.compile(r"[A-Za-z0-9_-]{22}")

# Values longer than any token or cookie this module makes are refused
# before any HMAC is computed.
_MAX_TOKEN_LENGTH = 128
_MAX_COOKIE_LENGTH = 4096


class InvalidShare(ValueError):
    """A link that cannot be made; the message says why, for whoever asked."""


@dataclass(frozen=True)
class ShareConfig:
    """``[share]``: who may make links, how long they last, how they are shown."""

    #: Where the site is reached from outside, mount point included, such as
    #: ``"https://example.org/reports"``; printed links start with it.
    base_url: str = ""
    #: Groups whose members may make links on the gate's ``shares`` page.
    creators: frozenset[str] = frozenset()
    #: Longest lifetime of a link, in seconds.
    max_expires: int = 30 * 86400


# -- ids and tokens ----------------------------------------------------------


def new_share_id() -> str:
    """Return a new random link id (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def is_share_id(value: str | None) -> bool:
    """Tell whether *value* has the shape of an id from :func:`new_share_id`."""
    return value is not None and _SHARE_ID.fullmatch(value) is not None


@lru_cache(maxsize=16)
def _signer(keys: tuple[SecretKey, ...], salt: str) -> Signer:
    # The gate reads a share cookie on every request of a link's holder;
    # the keys never change while it runs.
    return make_signer(keys, salt)


def make_token(keys: Sequence[SecretKey], share_id: str) -> str:
    """Return the URL-safe token that stands for *share_id* in a link."""
    return _signer(tuple(keys), _TOKEN_SALT).sign(share_id).decode("ascii")


def read_token(keys: Sequence[SecretKey], token: str | None) -> str | None:
    """Return the link id that *token* carries, or ``None`` if it is not ours.

    Any key may have signed it, so links outlive a key rotation as long as
    the old key is still listed.
    """
    if not token or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
        return None

    try:
        share_id = _signer(tuple(keys), _TOKEN_SALT).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError):
        return None

    return share_id if is_share_id(share_id) else None


def share_url(base_url: str, prefix: str, token: str) -> str:
    """Return the link for *token*.

    :param base_url: ``[share] base_url``; an empty one gives a link relative
        to the site, for the caller to complete.
    :param prefix: ``[pages] prefix``, canonical.
    """
    return f"{base_url.rstrip('/')}{quote_path(prefix)}share/{token}"


# -- what a link opens -------------------------------------------------------


def covers(share_path: str, request_path: str) -> bool:
    """Tell whether a link for *share_path* reaches canonical *request_path*.

    A file link reaches exactly that file.  A folder link (ending in ``/``)
    reaches the folder and everything under it, segment by segment:
    ``/a/`` reaches ``/a``, ``/a/`` and ``/a/b``, never ``/ab/x``.
    """
    if share_path.endswith("/"):
        return is_under(request_path, share_path)

    return request_path == share_path


def is_shell_share(record: ShareRecord) -> bool:
    """Tell whether *record* was made by an administrator at the shell."""
    return record.created_by.startswith(SHELL_MARK)


def shell_creator(login: str) -> str:
    """Return the ``created_by`` of a link made at the shell by *login*."""
    return SHELL_MARK + "".join(c for c in login if c.isprintable())[:64]


def decide_share(
    rules: RuleSet, share: ShareRecord, path: str, creator: Account | None
) -> Decision | None:
    """Decide what *share* lets its holder do with *path*.

    Returns ``None`` when the link does not cover *path*: there its holder
    is an ordinary visitor.  Within it, a path closed to everyone
    (``allow = "nobody"``) stays closed and a public path stays open.  Any
    other path opens as far as the link's creator may read it: all of it for
    a link made at the shell, and for a user's link what the rules let that
    user read now, so that a link never reaches further than the person who
    made it, even after the rules or their groups change.

    :param creator: the account named by ``share.created_by`` as it is now,
        or ``None`` when there is none; not used for links made at the shell.
    """
    if not covers(share.path, path):
        return None

    anonymous = rules.decide(path, None)
    if anonymous.outcome != LOGIN:
        return anonymous

    if is_shell_share(share):
        return Decision(ALLOW, anonymous.rule, anonymous.default, "shared link")

    if creator is None or creator.name != share.created_by:
        return Decision(
            FORBID, anonymous.rule, anonymous.default, "link's creator removed"
        )

    by_creator = rules.decide(path, creator.name, creator.groups)
    if by_creator.allowed:
        return Decision(ALLOW, by_creator.rule, by_creator.default, "shared link")

    return Decision(
        FORBID, by_creator.rule, by_creator.default, "beyond what its creator may read"
    )


# -- the cookie that replaces the token ---------------------------------------


def share_cookie_name(cookie_name: str, secure: bool) -> str:
    """Return the share cookie's name for ``[session] cookie_name``.

    It contains *cookie_name*, so the gate reads it with its own cookies.
    ``__Host-`` would need ``Path=/``; ``__Secure-`` still keeps http pages
    from setting it.
    """
    name = cookie_name + "_share"
    return "__Secure-" + name if secure else name


def share_cookie_path(base: str, share_path: str) -> str:
    """Return the cookie ``Path`` for a link to *share_path*.

    The shared path itself, without a folder's trailing slash: by RFC 6265
    section 5.1.4 a browser then sends the cookie for that file, or for the
    folder and what is under it, and nowhere else, segment by segment as
    :func:`covers` decides.  The file's own path rather than its folder keeps
    links to two files of one folder from overwriting each other's cookie.

    :param base: the mount point, percent-encoded, without a trailing slash.
    """
    return base + quote_path(share_path.rstrip("/")) or "/"


def share_cookie_until(share: ShareRecord, now: float) -> int:
    """Return when the cookie for *share* opened at *now* stops working."""
    return min(share.expires, int(now) + SHARE_COOKIE_LIFETIME)


def dump_share_cookie(
    keys: Sequence[SecretKey], share_id: str, scope: str, until: int
) -> str:
    """Return the signed cookie value for link *share_id* covering *scope*."""
    encoded = base64.urlsafe_b64encode(scope.encode("utf-8")).rstrip(b"=")
    payload = _SEPARATOR.join(
        (_COOKIE_FORMAT, share_id, str(int(until)), encoded.decode("ascii"))
    )
    return _signer(tuple(keys), _COOKIE_SALT).sign(payload).decode("ascii")


def load_share_cookie(
    keys: Sequence[SecretKey], value: str | None, now: float
) -> tuple[str, str] | None:
    """Return ``(share id, scope)`` from a cookie value still valid at *now*.

    The store must still be asked whether the link is live: the cookie only
    proves that this browser opened it, and until when it may go on reading.
    """
    if not value or len(value) > _MAX_COOKIE_LENGTH or not value.isascii():
        return None

    try:
        payload = _signer(tuple(keys), _COOKIE_SALT).unsign(value).decode("ascii")
    except (BadSignature, UnicodeError):
        return None

    fields = payload.split(_SEPARATOR)
    if len(fields) != 4 or fields[0] != _COOKIE_FORMAT:
        return None

    _, share_id, until_text, encoded = fields
    if not is_share_id(share_id) or not _is_number(until_text):
        return None

    # A cookie made to last longer than any this module makes is not ours.
    until = int(until_text)
    if not now < until <= now + SHARE_COOKIE_LIFETIME + 60:
        return None

    try:
        scope = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return share_id, scope.decode("utf-8")
    except (binascii.Error, UnicodeError):
        return None


def _is_number(text: str) -> bool:
    # isdigit() alone would take other scripts' digits, such as "١٢".
    return text.isascii() and text.isdigit() and len(text) <= 12


# -- checking a new link -----------------------------------------------------


def make_share(
    path: str,
    created_by: str,
    now: float,
    lifetime: int,
    uses: int | None = None,
    note: str = "",
) -> ShareRecord:
    """Return a new link record with a fresh id; checked values only."""
    created = int(now)
    return ShareRecord(
        new_share_id(), path, created_by, created, created + lifetime, uses, note
    )


def check_share_path(path: str, prefix: str) -> str:
    """Return *path* if a link may be made for it, else raise InvalidShare.

    It must be canonical (``/reports/`` for a folder, ``/reports/a.html`` for
    a file), not the whole site, and not one of the gate's own pages.

    :param path: the path as typed, as text (not a WSGI byte string).
    :param prefix: ``[pages] prefix``.
    """
    try:
        canonical = canonical_path(path.encode("utf-8").decode("latin-1"))
    except (PathRejected, UnicodeEncodeError) as error:
        reason = error.reason if isinstance(error, PathRejected) else "not text"
        raise InvalidShare(f"{path!r} cannot be shared: {reason}.") from None

    if canonical == "/":
        raise InvalidShare(
            "the whole site cannot be shared; share a folder such as '/reports/', "
            'or make it public with a rule allow = "anyone".'
        )

    if canonical != path:
        raise InvalidShare(f"{path!r} is not in canonical form; write {canonical!r}.")

    if is_under(canonical, prefix):
        raise InvalidShare(f"{path!r} is one of the gate's own pages at {prefix!r}.")

    return canonical


def check_share_target(folder: StaticFolder, path: str) -> None:
    """Make sure the file or folder *path* can be served; raise InvalidShare.

    The same lookup as for a request, so hidden files and refused symbolic
    links cannot be shared either.  A folder need not have an index file.
    """
    if path.endswith("/"):
        # Asked without the slash, a folder answers ADD_SLASH even when it
        # has no index file and listings are off.
        kind = folder.find(path[:-1]).kind
        if kind == ADD_SLASH:
            return

        if kind == FILE:
            raise InvalidShare(f"{path!r} is a file; write {path[:-1]!r}.")
    else:
        kind = folder.find(path).kind
        if kind == FILE:
            return

        if kind == ADD_SLASH:
            raise InvalidShare(
                f"{path!r} is a folder; write {path + '/'!r} to share what is in it."
            )

    raise InvalidShare(f"{path!r} does not exist under the served folder.")


def parse_expires(text: str, max_expires: int) -> int:
    """Return the lifetime *text* gives, in seconds, or raise InvalidShare."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise InvalidShare(
            f'the lifetime must be a duration such as "7d" or "12h", got {text!r}.'
        ) from None

    if seconds > max_expires:
        raise InvalidShare(
            f"links may last {format_duration(max_expires)} at most "
            f"([share] max_expires), got {text!r}."
        )

    return seconds


def check_uses(uses: int | None) -> int | None:
    """Return *uses* if it is ``None`` (no limit) or 1 or more."""
    if uses is not None and uses < 1:
        raise InvalidShare(f"the number of uses must be 1 or more, got {uses}.")

    return uses


def parse_uses(text: str) -> int | None:
    """Return the number of uses typed in a form; empty means no limit."""
    text = text.strip()
    if not text:
        return None

    if not _is_number(text):
        raise InvalidShare(f"the number of uses must be a whole number, got {text!r}.")

    return check_uses(int(text))


def check_note(note: str) -> str:
    """Return *note* without surrounding blanks, if it is one short line."""
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH or not note.isprintable():
        raise InvalidShare(
            f"the note must be one line of at most {MAX_NOTE_LENGTH} characters."
        )

    return note


def format_duration(seconds: int) -> str:
    """Write *seconds* the way an administrator would: ``"30d"``, ``"1d12h"``."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")

    return "".join(parts) or "0s"
