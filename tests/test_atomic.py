"""Atomic file replacement and the advisory lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import can_lock
from static_gate.atomic import locked, write_atomic


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_new_file_gets_the_given_mode(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"

    write_atomic(path, "new\n", mode=0o640)

    assert path.read_text(encoding="utf-8") == "new\n"
    assert mode_of(path) == 0o640


def test_new_file_is_owner_only_by_default(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    write_atomic(path, "new\n")
    assert mode_of(path) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644], ids=oct)
def test_existing_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "users.txt"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(mode)

    write_atomic(path, "new\n", mode=0o600 if mode != 0o600 else 0o644)

    assert path.read_text(encoding="utf-8") == "new\n"
    assert mode_of(path) == mode


def test_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    """A reader holding the old file keeps reading the whole old content."""
    path = tmp_path / "users.txt"
    path.write_text("old\n", encoding="utf-8")

    with path.open(encoding="utf-8") as reader:
        write_atomic(path, "new content\n")
        assert reader.read() == "old\n"

    assert path.read_text(encoding="utf-8") == "new content\n"


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("old\n", encoding="utf-8")

    write_atomic(path, "new\n")
    write_atomic(path, "newer\n")

    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_failed_rename_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash at the last step (simulated: it cannot be caused for real)."""
    path = tmp_path / "users.txt"
    path.write_text("old\n", encoding="utf-8")

    def fail(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left on device"):
        write_atomic(path, "new\n")

    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    """Text that cannot be encoded fails halfway through writing."""
    path = tmp_path / "users.txt"
    path.write_text("old\n", encoding="utf-8")

    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "x" * 100_000 + "\ud800")

    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["users.txt"]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "users.txt", "new\n")


def test_locked_holds_an_exclusive_lock(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    lock_path = tmp_path / "users.txt.lock"

    with locked(path):
        assert not can_lock(lock_path)

    assert can_lock(lock_path)
    assert mode_of(lock_path) & 0o007 == 0, "other users must not touch the lock"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_rewrite_keeps_the_owner_and_group(tmp_path: Path) -> None:
    """A users file rewritten by root stays readable by the server's user."""
    path = tmp_path / "users.txt"
    path.write_text("old\n")
    os.chown(path, 65534, 65534)

    with locked(path):
        write_atomic(path, "new\n")

    result = path.stat()
    assert (result.st_uid, result.st_gid) == (65534, 65534)
    lock = (tmp_path / "users.txt.lock").stat()
    assert (lock.st_uid, lock.st_gid) == (65534, 65534)


def test_locked_releases_the_lock_on_error(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"

    with pytest.raises(RuntimeError), locked(path):
        raise RuntimeError("interrupted")

    assert can_lock(tmp_path / "users.txt.lock")
