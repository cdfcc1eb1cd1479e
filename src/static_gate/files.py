"""Finding files under the served root and answering with them.

:meth:`StaticFolder.find` maps a canonical request path to at most one
regular file inside the root.  It never leaves the root: dotfiles are hidden
and, unless ``follow_symlinks`` is set, any symbolic link on the way makes the
path unknown.  Symbolic links are refused even when they stay inside the
root, because a link in a public folder pointing into a protected one would
let the public rule decide about protected bytes.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.http import parse_accept_header
from werkzeug.utils import get_content_type

from .file_response import FileAnswer, HeaderList, answer_with_file
from .paths import quote_path

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


INDEX = "index.html"

# Types that the system's mime.types files get wrong or lack on some hosts.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".csv": "text/csv",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".md": "text/markdown",
}

# Precompressed siblings, best first.
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
SIBLING_SUFFIXES = tuple(suffix for _, suffix in _ENCODINGS)

# What find() returns.
FILE = "file"
FOLDER = "folder"
ADD_SLASH = "add-slash"
MISSING = "missing"


@dataclass(frozen=True)
class Found:
    """What a request path points to under the root."""

    kind: str
    filename: str = ""
    stat: os.stat_result | None = None
    #: Other canonical paths whose rules must allow this file too: a
    #: folder's index file, or where a followed symbolic link leads.
    also_judged: tuple[str, ...] = ()


_NOTHING = Found(MISSING)


def guess_type(filename: str) -> str:
    """Return the ``Content-Type`` for *filename*, with a charset for text."""
    return _type_of(os.path.splitext(filename)[1].lower())


@lru_cache(maxsize=256)
def _type_of(extension: str) -> str:
    mimetype = _TYPES.get(extension) or mimetypes.guess_type("x" + extension)[0]
    return get_content_type(mimetype or "application/octet-stream", "utf-8")


class StaticFolder:
    """Serve the regular files under *root*.

    :param root: an absolute, resolved folder path.
    :param follow_symlinks: serve through symbolic links, even ones that lead
        out of *root*.
    :param directory_listing: list a folder that has no ``index.html``.
    :param precompressed: serve ``name.br`` or ``name.gz`` instead of
        ``name`` to clients that accept that encoding.
    """

    def __init__(
        self,
        root: Path,
        follow_symlinks: bool = False,
        directory_listing: bool = False,
        precompressed: bool = True,
    ) -> None:
        self.root = os.path.realpath(root)
        self.follow_symlinks = follow_symlinks
        self.directory_listing = directory_listing
        self.precompressed = precompressed

    def find(self, path: str) -> Found:
        """Look up canonical *path*; see the module docstring for the limits."""
        segments = [segment for segment in path.split("/") if segment]
        if any(segment.startswith(".") for segment in segments):
            return _NOTHING

        filename = os.path.join(self.root, *segments)
        result = self._stat(filename)
        if result is None:
            return _NOTHING

        if stat.S_ISREG(result.st_mode):
            if path.endswith("/"):
                return _NOTHING

            return Found(FILE, filename, result, self._link_targets(filename))

        if not stat.S_ISDIR(result.st_mode):
            return _NOTHING

        if not path.endswith("/"):
            return Found(ADD_SLASH)

        index = os.path.join(filename, INDEX)
        index_result = self._stat(index, folders_checked=True)
        if index_result is not None and stat.S_ISREG(index_result.st_mode):
            also = (path + INDEX, *self._link_targets(index))
            return Found(FILE, index, index_result, also)

        if self.directory_listing:
            return Found(FOLDER, filename, result)

        return _NOTHING

    def _link_targets(self, filename: str) -> tuple[str, ...]:
        """Where symbolic links lead inside the root, as a canonical path.

        A followed link in a public folder that points into a protected one
        must not make the protected file public.
        """
        if not self.follow_symlinks:
            return ()

        real = os.path.realpath(filename)
        if real == filename or os.path.commonpath((real, self.root)) != self.root:
            return ()

        return ("/" + os.path.relpath(real, self.root).replace(os.sep, "/"),)

    def _stat(
        self, filename: str, folders_checked: bool = False
    ) -> os.stat_result | None:
        """``stat`` *filename*, or ``None`` if it is missing or behind a link.

        :param folders_checked: the folders above *filename* were already
            found free of links (it is a sibling or child of a checked path).
        """
        try:
            if self.follow_symlinks:
                return os.stat(filename)

            result = os.lstat(filename)
        except (OSError, ValueError):
            return None

        if stat.S_ISLNK(result.st_mode):
            return None

        if not folders_checked and self._has_link_above(filename):
            return None

        return result

    def _has_link_above(self, filename: str) -> bool:
        # The root itself was resolved at start-up; only the folders between
        # it and the file need a look, one lstat each.
        folder = os.path.dirname(filename)
        while len(folder) > len(self.root):
            if os.path.islink(folder):
                return True
            folder = os.path.dirname(folder)

        return False

    def list_folder(self, found: Found) -> list[tuple[str, bool]]:
        """Return ``(name, is_folder)`` for the visible entries of a folder."""
        entries: list[tuple[str, bool]] = []
        try:
            with os.scandir(found.filename) as scan:
                for entry in scan:
                    if entry.name.startswith("."):
                        continue

                    if not self.follow_symlinks and entry.is_symlink():
                        continue

                    if entry.is_dir() or entry.is_file():
                        entries.append((entry.name, entry.is_dir()))
        except OSError:
            return []

        return sorted(entries)

    def respond(
        self, found: Found, environ: WSGIEnvironment, headers: HeaderList
    ) -> FileAnswer | None:
        """Answer with the file *found*, or ``None`` when it cannot be opened.

        :param headers: headers to send with every outcome, 304 and 416
            included; the file's own are added to the list.
        """
        filename, result = found.filename, found.stat
        if result is None:
            return None

        content_type = guess_type(filename)
        encoding = None
        if self.precompressed:
            encoding, filename, result, varies = self._pick_variant(
                filename, result, environ
            )
            if varies:
                headers.append(("Vary", "Accept-Encoding"))

        return answer_with_file(
            environ, filename, result, content_type, encoding, headers
        )

    def hand_over(
        self, found: Found, headers: HeaderList, mode: str, internal_prefix: str
    ) -> FileAnswer:
        """Let the front server send the file *found*, with *headers*.

        :param mode: ``"x-accel-redirect"`` (nginx: an internal redirect to
            *internal_prefix* plus the file's path) or ``"x-sendfile"``
            (Apache's mod_xsendfile: the file's absolute path).
        """
        headers.append(("Content-Type", guess_type(found.filename)))
        if mode == "x-sendfile":
            # WSGI header values are Latin-1 text; carrying the name's own
            # bytes that way lets mod_xsendfile open any name.
            raw_name = os.fsencode(found.filename).decode("latin-1")
            headers.append(("X-Sendfile", raw_name))
        else:
            relative = os.path.relpath(found.filename, self.root).replace(os.sep, "/")
            target = internal_prefix + quote_path(relative)
            headers.append(("X-Accel-Redirect", target))

        headers.append(("Content-Length", "0"))
        return FileAnswer("200 OK", headers, ())

    def _pick_variant(
        self, filename: str, result: os.stat_result, environ: WSGIEnvironment
    ) -> tuple[str | None, str, os.stat_result, bool]:
        """Choose a precompressed sibling the client accepts, if there is one.

        Returns the encoding (``None`` for the file itself), the file name, its
        stat result, and whether the choice depends on ``Accept-Encoding``.
        """
        accepted = parse_accept_header(environ.get("HTTP_ACCEPT_ENCODING"))
        varies = False
        for encoding, suffix in _ENCODINGS:
            sibling = filename + suffix
            sibling_result = self._stat(sibling, folders_checked=True)
            if sibling_result is None or not stat.S_ISREG(sibling_result.st_mode):
                continue

            varies = True
            if accepted[encoding]:
                return encoding, sibling, sibling_result, True

        return None, filename, result, varies


def is_case_sensitive(root: Path) -> bool:
    """Tell whether the file system holding *root* tells names apart by case.

    The check looks for *root*'s own name with its case swapped, or failing
    that for a swapped entry inside it; it writes nothing, and reads the
    folder only as far as the first name with a letter.
    """
    answer = _case_check(root)
    if answer is not None:
        return answer

    try:
        with os.scandir(root) as scan:
            for entry in scan:
                answer = _case_check(Path(entry.path))
                if answer is not None:
                    return answer
    except OSError:
        pass

    return True


def _case_check(path: Path) -> bool | None:
    """Whether *path*'s name with swapped case is another file; ``None`` when
    the name has no letters to swap."""
    swapped = path.name.swapcase()
    if swapped == path.name:
        return None

    try:
        return not os.path.samefile(path, path.with_name(swapped))
    except OSError:
        return True
