"""Who the client is and whether it used https, as far as can be believed.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are read only when the direct
peer (``REMOTE_ADDR``) is one of the configured trusted proxies; from anyone
else they change nothing.  Functions here are pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from .config import IPNetwork

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


@lru_cache(maxsize=1024)
def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    """Tell whether *address* belongs to one of the *trusted* networks."""
    if not trusted:
        return False

    parsed = _parse_address(address)
    return parsed is not None and any(parsed in network for network in trusted)


def client_address(environ: WSGIEnvironment, trusted: Sequence[IPNetwork]) -> str:
    """Return the client's address.

    Behind trusted proxies, ``X-Forwarded-For`` is walked from the right,
    past the trusted hops; the first address not trusted is the client.
    """
    peer = str(environ.get("REMOTE_ADDR") or "-")
    if not is_trusted(peer, trusted):
        return peer

    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _parse_address(hop) is None:
            # A hop we cannot read ends the chain we can believe.
            return peer

        peer = hop
        if not is_trusted(hop, trusted):
            return hop

    return peer


def is_https(environ: WSGIEnvironment, trusted: Sequence[IPNetwork]) -> bool:
    """Tell whether the client reached the site over https."""
    if environ.get("wsgi.url_scheme") == "https":
        return True

    if not is_trusted(str(environ.get("REMOTE_ADDR") or ""), trusted):
        return False

    proto = str(environ.get("HTTP_X_FORWARDED_PROTO", ""))
    # With several proxies the header may hold a list; the last hop is ours.
    return proto.rsplit(",", 1)[-1].strip().lower() == "https"
