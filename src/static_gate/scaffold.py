"""What ``static-gate init`` writes: a configuration, a key and a users file.

Nothing existing is ever overwritten: each file is created exclusively, and
an existing one stops the command before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import write_atomic
from .credentials import format_users
from .errors import StaticGateError
from .keys import generate_key, write_key_file

CONFIG_NAME = "gate.toml"
KEY_NAME = "gate.secret"
USERS_NAME = "users.txt"

_CONFIG = """\
# static-gate configuration.  Every key is described in docs/configuration.md.
# Relative paths are resolved against the folder holding this file.

[static]
root = {root}
# follow_symlinks = false
# directory_listing = false

[auth]
{auth}

[session]
# The signing key is read from this file, or from STATIC_GATE_SECRET_KEY.
secret_file = "{key}"
lifetime = "8h"
idle_timeout = "30m"
# secure_cookie = "auto"       # true when the site is only reached over https

[pages]
title = "Sign in"
# message = "Reports for staff of Example School."

# [proxy]
# trusted = ["127.0.0.1"]      # set when a reverse proxy forwards requests

# Paths no rule covers need a signed-in user.  The most specific rule wins.
# [[rules]]
# path = "/public/"
# allow = "anyone"
#
# [[rules]]
# path = "/staff/"
# groups = ["staff"]
"""

_INDEX = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reports</title>
<h1>Reports</h1>
<p>Put your reports in this folder. Only signed-in users can read them.</p>
</html>
"""


def create_site(folder: Path, root: str | None, shared_hash: str | None) -> list[Path]:
    """Create the files for a new gate in *folder* and return their paths.

    :param root: the folder to serve, relative to *folder*; ``None`` creates
        a ``site`` folder with a placeholder page.
    :param shared_hash: an argon2 hash for a shared password, or ``None``
        to use named users in a users file.
    :raises StaticGateError: one of the files already exists.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_NAME
    key = folder / KEY_NAME
    users = folder / USERS_NAME
    planned = [config, key] + ([users] if shared_hash is None else [])
    existing = [path for path in planned if path.exists()]
    if existing:
        raise StaticGateError(
            f"{existing[0]} already exists; nothing was written "
            "(choose another folder, or edit the existing files)."
        )

    created = []
    if root is None:
        site = folder / "site"
        if not site.exists():
            site.mkdir()
            write_atomic(site / "index.html", _INDEX, mode=0o644)
            created.append(site / "index.html")
        root = "site"

    if shared_hash is None:
        auth = f'users_file = "{USERS_NAME}"\n# shared_password_hash = ""'
    else:
        auth = f'shared_password_hash = "{shared_hash}"'

    text = _CONFIG.format(root=_toml_string(root), auth=auth, key=KEY_NAME)
    write_key_file(key, generate_key())
    if shared_hash is None:
        _create(users, format_users({}), 0o640)
    _create(config, text, 0o644)
    return [config, key] + ([users] if shared_hash is None else []) + created


def _create(path: Path, text: str, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
