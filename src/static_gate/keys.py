"""Signing keys: where they come from and how they are kept out of sight.

Keys never live in the configuration file.  They come from the environment
variable ``STATIC_GATE_SECRET_KEY`` or from a key file, one key per line.
The first key signs; every key verifies, so a new key can be put first while
the old one still accepts the cookies already issued.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError

#: Environment variable that overrides the key file when it is set.
SECRET_ENV = "STATIC_GATE_SECRET_KEY"

#: Shortest accepted key, in bytes.
MIN_KEY_BYTES = 32


class SecretKey:
    """A signing key whose ``repr`` never shows its value."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    @property
    def value(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "SecretKey('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def generate_key() -> str:
    """Return a new random key as text: 48 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(48)


def parse_keys(text: str, source: str) -> tuple[SecretKey, ...]:
    """Split key text into keys, newest first, and check each one's length.

    Blank lines and lines starting with ``#`` are skipped; other whitespace
    separates keys too, so an environment variable may hold several.

    :param source: where the text came from, for error messages.
    :raises ConfigError: no key, or a key shorter than :data:`MIN_KEY_BYTES`.
    """
    words = [
        word
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for word in line.split()
    ]
    if not words:
        raise ConfigError(
            f"{source} holds no signing key; create one with 'static-gate secret'."
        )

    problems = [
        f"{source}: key {number} is {len(word.encode())} bytes long; "
        f"a signing key needs at least {MIN_KEY_BYTES} bytes, "
        "create one with 'static-gate secret'."
        for number, word in enumerate(words, start=1)
        if len(word.encode()) < MIN_KEY_BYTES
    ]
    if problems:
        raise ConfigError(problems)

    return tuple(SecretKey(word.encode()) for word in words)


def load_keys(
    key_file: Path | None, environ: Mapping[str, str], config_name: str
) -> tuple[SecretKey, ...]:
    """Read the signing keys from the environment or from the key file.

    :param key_file: the ``[session] secret_file`` path, or ``None``.
    :param config_name: the configuration file's name, for error messages.
    :raises ConfigError: no source, an unreadable or world-readable file, or
        keys that are too short.
    """
    from_env = environ.get(SECRET_ENV)
    if from_env is not None:
        return parse_keys(from_env, f"environment variable {SECRET_ENV}")

    if key_file is None:
        raise ConfigError(
            f"{config_name}: [session] secret_file is not set and neither is "
            f"{SECRET_ENV}; set one of them "
            "('static-gate init' writes a key file)."
        )

    try:
        mode = key_file.stat().st_mode
        text = key_file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{config_name}: [session] secret_file {str(key_file)!r} cannot be "
            f"read ({error.strerror}); if it is missing, create it with "
            f"'(umask 077; static-gate secret > {key_file})', else let this "
            "process's user read it."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{config_name}: [session] secret_file {str(key_file)!r} is not "
            "UTF-8 text; create it with 'static-gate secret'."
        ) from None

    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        # Reading it lets anyone forge sessions; writing it, plant a key.
        raise ConfigError(
            f"{config_name}: [session] secret_file {str(key_file)!r} can be read "
            "or changed by other users on this machine; "
            f"run 'chmod o-rwx,g-w {key_file}'."
        )

    return parse_keys(text, f"{config_name}: [session] secret_file {str(key_file)!r}")


def write_key_file(path: Path, key: str) -> None:
    """Create a key file readable by its owner only; never overwrite one."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
