"""Signing keys: parsing, sources, file permissions and masking."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from static_gate.errors import ConfigError
from static_gate.keys import (
    MIN_KEY_BYTES,
    SECRET_ENV,
    SecretKey,
    generate_key,
    load_keys,
    parse_keys,
    write_key_file,
)

NEW = "n" * 40
OLD = "o" * 40


def write_key(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# parse_keys


def test_parse_one_key() -> None:
    assert parse_keys(NEW + "\n", "test") == (SecretKey(NEW.encode()),)


def test_parse_skips_comments_and_blank_lines() -> None:
    text = f"# newest first\n\n   \n{NEW}\n  # the old one, until Monday\n{OLD}\n"
    assert parse_keys(text, "test") == (
        SecretKey(NEW.encode()),
        SecretKey(OLD.encode()),
    )


def test_parse_keeps_the_order_newest_first() -> None:
    keys = parse_keys(f"{OLD}\n{NEW}\n", "test")
    assert [key.value for key in keys] == [OLD.encode(), NEW.encode()]


def test_whitespace_separates_keys_too() -> None:
    """An environment variable may hold several keys on one line."""
    keys = parse_keys(f"  {NEW} \t{OLD}  ", "test")
    assert keys == (SecretKey(NEW.encode()), SecretKey(OLD.encode()))


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \t  "])
def test_no_key_at_all(text: str) -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "test holds no signing key; create one with 'static-gate secret'."
        ),
    ):
        parse_keys(text, "test")


def test_key_of_minimum_length_is_accepted() -> None:
    key = "m" * MIN_KEY_BYTES
    assert parse_keys(key, "test") == (SecretKey(key.encode()),)


def test_short_key_is_refused_without_echoing_it() -> None:
    short = "q7Zk-short-" + "x" * (MIN_KEY_BYTES - 12)
    expected = (
        f"test: key 1 is {MIN_KEY_BYTES - 1} bytes long; a signing key needs at "
        f"least {MIN_KEY_BYTES} bytes, create one with 'static-gate secret'."
    )

    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        parse_keys(short, "test")

    assert short not in str(caught.value)
    assert "q7Zk" not in str(caught.value)


def test_key_length_counts_bytes_not_characters() -> None:
    with pytest.raises(ConfigError, match="is 31 bytes long"):
        parse_keys("é" * 15 + "x", "test")

    assert parse_keys("é" * 16, "test")[0].value == ("é" * 16).encode()


def test_every_short_key_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys(f"short-one\n{NEW}\nshort-two\n", "test")

    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("test: key 1 is 9 bytes long")
    assert problems[1].startswith("test: key 3 is 9 bytes long")
    assert "short-one" not in str(caught.value)
    assert "short-two" not in str(caught.value)


# load_keys


def test_key_file_is_read(tmp_path: Path) -> None:
    path = write_key(tmp_path / "gate.secret", f"{NEW}\n{OLD}\n")
    keys = load_keys(path, {}, "gate.toml")
    assert keys == (SecretKey(NEW.encode()), SecretKey(OLD.encode()))


def test_environment_variable_wins_over_the_file(tmp_path: Path) -> None:
    path = write_key(tmp_path / "gate.secret", OLD)
    keys = load_keys(path, {SECRET_ENV: NEW}, "gate.toml")
    assert keys == (SecretKey(NEW.encode()),)


def test_environment_variable_needs_no_file(tmp_path: Path) -> None:
    keys = load_keys(tmp_path / "missing.secret", {SECRET_ENV: NEW}, "gate.toml")
    assert keys == (SecretKey(NEW.encode()),)


def test_short_key_in_environment_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"environment variable {SECRET_ENV}: key 1 is")
    ) as caught:
        load_keys(None, {SECRET_ENV: "hunter2"}, "gate.toml")

    assert "hunter2" not in str(caught.value)


def test_no_file_and_no_variable() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("gate.toml: [session] secret_file is not set")
    ):
        load_keys(None, {}, "gate.toml")


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.secret"
    expected = (
        f"gate.toml: [session] secret_file '{path}' cannot be read "
        "(No such file or directory)"
    )

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_keys(path, {}, "gate.toml")


def test_key_file_that_is_not_utf_8(tmp_path: Path) -> None:
    path = tmp_path / "gate.secret"
    path.write_bytes(b"\xff" * 40)
    path.chmod(0o600)

    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_keys(path, {}, "gate.toml")


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o444, 0o666, 0o602, 0o620], ids=oct)
def test_key_file_open_to_other_users_is_refused(tmp_path: Path, mode: int) -> None:
    """Reading the key lets anyone forge sessions; writing it, plant a key."""
    path = write_key(tmp_path / "gate.secret", NEW, mode)
    expected = (
        f"gate.toml: [session] secret_file '{path}' can be read or changed by other "
        f"users on this machine; run 'chmod o-rwx,g-w {path}'."
    )

    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_keys(path, {}, "gate.toml")

    assert NEW not in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440], ids=oct)
def test_key_file_readable_by_owner_or_group_is_accepted(
    tmp_path: Path, mode: int
) -> None:
    path = write_key(tmp_path / "gate.secret", NEW, mode)
    assert load_keys(path, {}, "gate.toml") == (SecretKey(NEW.encode()),)


def test_short_key_in_file_is_not_echoed(tmp_path: Path) -> None:
    path = write_key(tmp_path / "gate.secret", "file-key-too-short\n")

    with pytest.raises(ConfigError, match="needs at least 32 bytes") as caught:
        load_keys(path, {}, "gate.toml")

    assert "file-key-too-short" not in str(caught.value)


# SecretKey


def test_secret_key_repr_is_masked() -> None:
    key = SecretKey(NEW.encode())

    assert repr(key) == "SecretKey('********')"
    assert NEW not in str(key)
    assert NEW not in repr((key,))
    assert NEW not in f"{key}"


def test_secret_key_equality() -> None:
    assert SecretKey(b"a" * 40) == SecretKey(b"a" * 40)
    assert SecretKey(b"a" * 40) != SecretKey(b"b" * 40)
    assert SecretKey(b"a" * 40) != b"a" * 40
    assert len({SecretKey(b"a" * 40), SecretKey(b"a" * 40)}) == 1


# write_key_file and generate_key


def test_write_key_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "gate.secret"

    write_key_file(path, NEW)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == NEW + "\n"
    assert load_keys(path, {}, "gate.toml") == (SecretKey(NEW.encode()),)


def test_write_key_file_never_overwrites(tmp_path: Path) -> None:
    path = write_key(tmp_path / "gate.secret", OLD + "\n")

    with pytest.raises(FileExistsError):
        write_key_file(path, NEW)

    assert path.read_text(encoding="utf-8") == OLD + "\n"


def test_generated_key_is_long_enough_and_url_safe() -> None:
    key = generate_key()

    assert len(key) == 64
    assert len(key.encode()) >= MIN_KEY_BYTES
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key)
    assert parse_keys(key, "test") == (SecretKey(key.encode()),)


def test_generated_keys_differ() -> None:
    assert len({generate_key() for _ in range(20)}) == 20
