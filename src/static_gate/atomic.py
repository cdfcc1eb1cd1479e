"""Writing files so that readers see the old or the new content, never half.

A file is written to a temporary sibling, flushed to disk and renamed over
the old one.  :func:`locked` serialises read-modify-write cycles between
processes with an advisory lock on a ``.lock`` sibling.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace *path* with *text* in one step.

    An existing file keeps its permission bits, and its owner and group
    where this process may set them (as root): otherwise a command run by
    root would leave a users file the server's user can no longer read.
    A new file gets *mode*.
    """
    owner = None
    try:
        current = path.stat()
        mode = current.st_mode & 0o777
        owner = (current.st_uid, current.st_gid)
    except FileNotFoundError:
        pass

    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

        os.chmod(temporary, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise

    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk too.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for *path* while the block runs."""
    lock_path = path.with_name(path.name + ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        # The server's user takes this lock too (to store upgraded hashes).
        _match_owner(descriptor, path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _match_owner(descriptor: int, path: Path) -> None:
    if os.geteuid() != 0:
        return

    try:
        current = path.stat()
    except FileNotFoundError:
        return

    os.fchown(descriptor, current.st_uid, current.st_gid)
