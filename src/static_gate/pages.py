"""The gate's own HTML pages: sign in, sign out, refusals and folder lists.

Pages are complete documents with inline styles, no scripts and no external
assets, readable on a phone.  Their frame comes from a ``string.Template``:
the built-in one, or an administrator's file given as ``[pages] template``,
which may use ``$title``, ``$message``, ``$nonce`` and must use ``$content``.
Every value put into a page is HTML-escaped.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from html import escape
from pathlib import Path
from string import Template

from werkzeug.wrappers import Response

from .errors import ConfigError
from .paths import quote_path
from .shares import MAX_NOTE_LENGTH

_PLACEHOLDERS = {"title", "message", "content", "nonce"}

_STYLE = """
*{box-sizing:border-box}
html{font:100%/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1b1f24;background:#f3f4f6}
body{margin:0;padding:1rem}
main{max-width:26rem;margin:8vh auto;background:#fff;border-radius:.5rem;
padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
main.wide{max-width:48rem}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1.1rem;margin:1.25rem 0 .5rem}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{display:block;width:100%;font:inherit;padding:.6rem;
border:1px solid #6b7280;border-radius:.3rem}
input:focus,button:focus,a:focus{outline:3px solid #2563eb;outline-offset:2px}
label.check{display:flex;gap:.5rem;align-items:center;font-weight:400}
label.check input{width:auto;margin:0}
button{font:inherit;margin-top:1.25rem;width:100%;padding:.7rem;border:0;
border-radius:.3rem;background:#1d4ed8;color:#fff;font-weight:600;cursor:pointer}
.error{color:#991b1b;background:#fef2f2;border:1px solid #fca5a5;
padding:.6rem;border-radius:.3rem}
.notice{background:#eff6ff;border:1px solid #93c5fd;padding:.6rem;border-radius:.3rem}
.hint{color:#4b5563;font-size:.9rem;margin:.25rem 0 0}
ul{padding-left:1.2rem;overflow-wrap:anywhere}
a{color:#1d4ed8}
"""

DEFAULT_TEMPLATE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>$title</title>
<style nonce="$nonce">"""
    + _STYLE
    + """</style>
</head>
<body>
$content
</body>
</html>
"""
)


def load_template(path: Path | None) -> Template:
    """Read and check a page template, or return the built-in one.

    :raises ConfigError: unreadable file, unknown placeholder, or no
        ``$content``.
    """
    if path is None:
        return Template(DEFAULT_TEMPLATE)

    where = f"[pages] template {str(path)!r}"
    try:
        template = Template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where} cannot be read ({error}).") from None

    names = set()
    for match in template.pattern.finditer(template.template):
        if match.group("invalid") is not None:
            raise ConfigError(f"{where} has a stray '$'; write '$$' for a dollar sign.")

        names.add(match.group("named") or match.group("braced"))

    names.discard(None)
    unknown = names - _PLACEHOLDERS
    if unknown:
        allowed = ", ".join(f"${name}" for name in sorted(_PLACEHOLDERS))
        raise ConfigError(
            f"{where} uses {', '.join(sorted(unknown))}; it may use {allowed}."
        )

    if "content" not in names:
        raise ConfigError(f"{where} must contain $content, where the form goes.")

    return template


class Pages:
    """Render the gate's pages as responses.

    :param prefix: the URL prefix of the gate's pages, mount point included.
    """

    def __init__(
        self, title: str, message: str, template: Template, prefix: str
    ) -> None:
        self.title = title
        self.message = message
        self.template = template
        self.prefix = prefix

    def render(
        self, status: int, heading: str, body: str, wide: bool = False
    ) -> Response:
        """Return a page with *body* (already HTML) under *heading*."""
        nonce = secrets.token_urlsafe(12)
        main_class = ' class="wide"' if wide else ""
        content = f"<main{main_class}>\n<h1>{escape(heading)}</h1>\n{body}</main>"
        page = self.template.substitute(
            title=escape(heading),
            message=escape(self.message),
            content=content,
            nonce=nonce,
        )
        response = Response(
            page, status=status, content_type="text/html; charset=utf-8"
        )
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    def login(
        self,
        status: int,
        token: str,
        next_path: str,
        ask_user: bool,
        user_optional: bool,
        error: str = "",
        offer_remember: bool = False,
        notice: str = "",
        user: str = "",
    ) -> Response:
        """The sign-in form, with an inline *error* after a failed attempt."""
        parts = []
        if self.message:
            parts.append(f"<p>{escape(self.message)}</p>")

        if notice:
            parts.append(f'<p class="notice" role="status">{escape(notice)}</p>')

        described = ""
        if error:
            parts.append(
                f'<p class="error" id="error" role="alert">{escape(error)}</p>'
            )
            described = ' aria-describedby="error" aria-invalid="true"'

        parts.append(f'<form method="post" action="{escape(self.prefix)}login">')
        parts.append(_hidden("csrf_token", token) + _hidden("next", next_path))
        if ask_user:
            required = "" if user_optional else " required"
            hint_id = ' aria-describedby="user-hint"' if user_optional else ""
            parts.append(
                '<label for="user">User name</label>\n'
                f'<input id="user" name="user" type="text" value="{escape(user)}"'
                ' autocomplete="username" autocapitalize="none" spellcheck="false"'
                f' maxlength="64"{required}{hint_id}{"" if error else " autofocus"}>'
            )
            if user_optional:
                parts.append(
                    '<p class="hint" id="user-hint">Leave empty to use the '
                    "shared password.</p>"
                )

        focus = " autofocus" if error or not ask_user else ""
        parts.append(
            '<label for="password">Password</label>\n'
            '<input id="password" name="password" type="password"'
            f' autocomplete="current-password" maxlength="1024" required'
            f"{described}{focus}>"
        )
        if offer_remember:
            parts.append(
                '<label class="check"><input type="checkbox" name="remember" '
                'value="yes"> Keep me signed in on this device</label>'
            )
        parts.append('<button type="submit">Sign in</button>\n</form>')
        response = self.render(status, self.title, "\n".join(parts) + "\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Form realm="static-gate"'

        return response

    def logout_confirm(self, token: str, user: str) -> Response:
        """A page with one button that signs out with a POST."""
        body = (
            f"<p>You are signed in as <strong>{escape(user)}</strong>.</p>\n"
            f'<form method="post" action="{escape(self.prefix)}logout">'
            + _hidden("csrf_token", token)
            + '<button type="submit">Sign out</button>\n</form>\n'
        )
        return self.render(200, "Sign out", body)

    def forbidden(self, user: str | None) -> Response:
        """The page for a visitor whom the rules do not let in."""
        if user is None:
            return self.error(403, "Access denied", "This page is closed.")

        body = (
            f"<p>You are signed in as <strong>{escape(user)}</strong>, and this "
            "account may not open this page.</p>\n"
            f'<p><a href="{escape(self.prefix)}logout">Sign in as someone else</a>'
            "</p>\n"
        )
        return self.render(403, "Access denied", body)

    def throttled(self, retry_after: int) -> Response:
        """The page for a sign-in refused because of too many failures."""
        minutes = max(1, -(-retry_after // 60))
        response = self.error(
            429,
            "Too many attempts",
            "There were too many failed sign-ins. Please wait "
            f"{minutes} minute{'s' if minutes != 1 else ''} and try again.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def unavailable(self, text: str, retry_after: int = 30) -> Response:
        """The page for a request that cannot be answered safely right now."""
        response = self.error(503, "Temporarily unavailable", text)
        response.headers["Retry-After"] = str(retry_after)
        return response

    def account(
        self,
        user: str,
        groups: frozenset[str],
        sessions: list[tuple[str, str, str, bool]],
        logout_token: str,
        everywhere_token: str,
    ) -> Response:
        """The signed-in user's page: their sessions and the sign-out buttons.

        :param sessions: ``(started, last seen, client, is this browser)``.
        """
        rows = "\n".join(
            f"<li>{'<strong>This browser</strong>, ' if this else ''}"
            f"from {escape(client)}, signed in {escape(started)}, "
            f"last seen {escape(seen)}</li>"
            for started, seen, client, this in sessions
        )
        group_text = ", ".join(sorted(groups)) or "none"
        body = (
            f"<p>Signed in as <strong>{escape(user)}</strong> "
            f"(groups: {escape(group_text)}).</p>\n"
            f"<h2>Open sessions</h2>\n<ul>\n{rows}\n</ul>\n"
            f'<form method="post" action="{escape(self.prefix)}logout">'
            + _hidden("csrf_token", logout_token)
            + '<button type="submit">Sign out</button>\n</form>\n'
            f'<form method="post" action="{escape(self.prefix)}account">'
            + _hidden("csrf_token", everywhere_token)
            + '<button type="submit">Sign out everywhere</button>\n</form>\n'
        )
        return self.render(200, "Your account", body, wide=True)

    def share_open(self, path: str, action: str) -> Response:
        """The page of a share link: what it opens, and the button to open it.

        :param action: where the button posts: the link itself, encoded.
        """
        body = (
            f"<p>You were sent a link to <strong>{escape(path)}</strong>.</p>\n"
            f'<form method="post" action="{escape(action)}">'
            '<button type="submit">Open</button>\n</form>\n'
        )
        return self.render(200, "Shared with you", body)

    def share_gone(self) -> Response:
        """The page for a share link that is expired, revoked or used up."""
        return self.error(
            410,
            "Link expired",
            "This link is not valid any more. "
            "Ask the person who sent it for a new one.",
        )

    def share_invalid(self) -> Response:
        """The page for a share link whose token is not one of ours."""
        return self.error(
            404,
            "Link not valid",
            "This link is not complete. Check that it was copied whole.",
        )

    def share_form(
        self,
        status: int,
        token: str,
        values: Mapping[str, str],
        longest: str,
        error: str = "",
    ) -> Response:
        """The form on which a signed-in user makes a share link.

        :param values: what the fields hold: ``path``, ``expires``, ``uses``
            and ``note``, as sent.
        :param longest: ``[share] max_expires``, written as a duration.
        """
        parts = []
        if error:
            parts.append(f'<p class="error" role="alert">{escape(error)}</p>')

        parts.append(
            f'<form method="post" action="{escape(self.prefix)}shares">'
            + _hidden("csrf_token", token)
            + _field(
                "path",
                "File or folder",
                values.get("path", ""),
                "Such as /reports/a.html for one file, or /reports/ for a folder "
                "and everything in it.",
                ' required autocapitalize="none" spellcheck="false"',
            )
            + _field(
                "expires",
                "Works for",
                values.get("expires", "7d"),
                f"Such as 12h or 7d; at most {longest}.",
                " required",
            )
            + _field(
                "uses",
                "Times it may be opened",
                values.get("uses", ""),
                "Leave empty for no limit.",
                ' inputmode="numeric"',
            )
            + _field(
                "note",
                "Note",
                values.get("note", ""),
                "For whoever manages links; never shown to whoever opens it.",
                f' maxlength="{MAX_NOTE_LENGTH}"',
            )
            + '\n<button type="submit">Make link</button>\n</form>'
        )
        return self.render(status, "Share a file or folder", "\n".join(parts) + "\n")

    def share_made(self, url: str) -> Response:
        """The page that shows a new share link, once."""
        body = (
            "<p>Send this link to whoever should read the file or folder. "
            "It is shown only now.</p>\n"
            f'<p><input readonly value="{escape(url)}" aria-label="Share link"></p>\n'
            f'<p><a href="{escape(self.prefix)}shares">Make another link</a></p>\n'
        )
        return self.render(200, "Link made", body)

    def error(self, status: int, heading: str, text: str) -> Response:
        """A short page for a refused or failed request."""
        return self.render(status, heading, f"<p>{escape(text)}</p>\n")

    def listing(self, path: str, entries: list[tuple[str, bool]]) -> Response:
        """A list of links to the entries of the folder at canonical *path*."""
        items = [
            # "./" keeps a name such as "javascript:x" from reading as a scheme.
            f'<li><a href="./{escape(quote_path(name + ("/" if is_folder else "")))}">'
            f"{escape(name)}{'/' if is_folder else ''}</a></li>"
            for name, is_folder in entries
        ]
        if path != "/":
            items.insert(0, '<li><a href="../">../</a></li>')

        body = "<ul>\n" + "\n".join(items) + "\n</ul>\n"
        return self.render(200, f"Index of {path}", body, wide=True)


def _field(name: str, label: str, value: str, hint: str, attributes: str) -> str:
    """A labelled text input with a hint; *attributes* are trusted HTML."""
    return (
        f'\n<label for="{name}">{escape(label)}</label>\n'
        f'<input id="{name}" name="{name}" value="{escape(value)}"'
        f' aria-describedby="{name}-hint"{attributes}>\n'
        f'<p class="hint" id="{name}-hint">{escape(hint)}</p>'
    )


def _hidden(name: str, value: str) -> str:
    return f'\n<input type="hidden" name="{name}" value="{escape(value)}">'
