"""The response headers that protect content, and how they are applied.

Every answer carries ``X-Content-Type-Options``, ``Referrer-Policy``, frame
protection and ``Vary: Cookie``.  ``Cache-Control`` is ``private, no-store``
unless a public rule names another value, so that no browser or shared cache
keeps a copy of a protected page.
"""

from __future__ import annotations

from werkzeug.datastructures import Headers

#: Cache-Control for everything that no public rule covers.
PROTECTED_CACHE = "private, no-store"

_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)

# Content from the folder or the wrapped app keeps its own scripts and
# styles; only framing is forbidden.  The gate's pages set a strict policy.
CONTENT_POLICY = ("Content-Security-Policy", "frame-ancestors 'none'")

# Headers of a wrapped application's response that the gate's values replace.
_REPLACED = frozenset(name.lower() for name, _ in (*_ALWAYS, ("Cache-Control", "")))


def protect(headers: Headers, cache_control: str | None = None) -> None:
    """Add the protective headers to *headers* in place.

    :param cache_control: the ``Cache-Control`` of a public rule, or
        ``None`` for :data:`PROTECTED_CACHE`.
    """
    for name, value in _ALWAYS:
        headers.setdefault(name, value)

    headers["Cache-Control"] = cache_control or PROTECTED_CACHE
    headers.add("Vary", "Cookie")


_CONTENT = (CONTENT_POLICY, *_ALWAYS, ("Vary", "Cookie"))


def content_headers(cache_control: str | None = None) -> list[tuple[str, str]]:
    """Return the headers for a file or for a wrapped application's answer.

    A plain list, not werkzeug's ``Headers``: this runs on every request.
    """
    return [*_CONTENT, ("Cache-Control", cache_control or PROTECTED_CACHE)]


def merge(
    app_headers: list[tuple[str, str]], gate_headers: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Put the gate's headers over a wrapped application's own.

    The application's ``Cache-Control`` and protective headers are replaced;
    everything else it sends is kept.
    """
    merged = [
        (name, value) for name, value in app_headers if name.lower() not in _REPLACED
    ]
    merged.extend(gate_headers)
    return merged
