"""Tokens that prove a form was sent from a page this gate served.

A token signs a value bound to the browser: the random nonce in the login
cookie before sign-in, the session id after it.  A token from another
browser, an expired token or a forged one does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .keys import SecretKey

#: Seconds a form stays valid after it was served.
TOKEN_MAX_AGE = 2 * 3600


_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")


def new_nonce() -> str:
    """Return a random value to bind login forms to one browser."""
    return secrets.token_urlsafe(24)


def is_nonce(value: str | None) -> bool:
    """Tell whether *value* has the shape of a value from :func:`new_nonce`."""
    return value is not None and _NONCE.fullmatch(value) is not None


class CsrfTokens:
    """Issue and check form tokens for one purpose, such as ``"login"``."""

    def __init__(self, keys: Sequence[SecretKey], purpose: str) -> None:
        self._serializer = URLSafeTimedSerializer(
            [key.value for key in reversed(keys)],
            salt=f"static-gate.csrf.{purpose}",
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def issue(self, binding: str) -> str:
        """Return a token for the browser identified by *binding*."""
        return self._serializer.dumps(binding)

    def check(self, token: str | None, binding: str | None) -> bool:
        """Tell whether *token* was issued for *binding* and is still fresh."""
        if not token or not binding:
            return False

        try:
            value = self._serializer.loads(token, max_age=TOKEN_MAX_AGE)
        except (BadSignature, SignatureExpired):
            return False

        if not isinstance(value, str):
            return False

        # compare_digest refuses non-ASCII str; the binding may come from a
        # cookie the client wrote.
        return hmac.compare_digest(value.encode(), binding.encode())
