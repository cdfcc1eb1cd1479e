"""Accounts, the users file and password checks."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from conftest import (
    FAST_HASHER,
    GROUPS,
    PASSWORDS,
    SHARED_PASSWORD,
    FakeClock,
    can_lock,
    write_users,
)
from static_gate.config import AuthConfig
from static_gate.credentials import (
    MIN_PASSWORD_LENGTH,
    RELOAD_INTERVAL,
    Account,
    Accounts,
    UsersFile,
    check_password_strength,
    fingerprint,
    format_users,
    parse_users,
    read_users_file,
    update_users_file,
)
from static_gate.errors import ConfigError

# Cheap, and different from FAST_HASHER, so that its hashes need a rehash.
OTHER_HASHER = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    """FAST_HASHER's parameters, counting calls to ``verify``."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def users_path(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    write_users(path)
    return path


def make_accounts(
    users_file: Path | None = None,
    shared: str | None = None,
    hasher: PasswordHasher = FAST_HASHER,
    clock: FakeClock | None = None,
) -> Accounts:
    auth = AuthConfig(
        users_file=users_file,
        shared_password_hash=FAST_HASHER.hash(shared) if shared else None,
    )
    return Accounts(auth, hasher, clock or FakeClock(0.0))


# The users file format


def test_format_and_parse_round_trip() -> None:
    accounts = {
        "carol": Account("carol", "$argon2id$c", frozenset({"staff", "admins"})),
        "alice": Account("alice", "$argon2id$a", frozenset({"staff"})),
        "bob": Account("bob", "$argon2id$b"),
    }

    text = format_users(accounts)

    assert parse_users(text, "users.txt") == accounts
    assert text.startswith("# static-gate users")
    assert text.splitlines()[2:] == [
        "alice:$argon2id$a:staff",
        "bob:$argon2id$b:",
        "carol:$argon2id$c:admins,staff",
    ]


def test_real_hashes_round_trip(users_path: Path) -> None:
    accounts = read_users_file(users_path)

    assert set(accounts) == set(PASSWORDS)
    for name, account in accounts.items():
        assert account.groups == GROUPS[name]
        assert FAST_HASHER.verify(account.password_hash, PASSWORDS[name])


def test_parse_skips_comments_and_blank_lines() -> None:
    text = "# users\n\n   # indented comment\nalice:$argon2id$a:staff\n\n"
    assert parse_users(text, "users.txt") == {
        "alice": Account("alice", "$argon2id$a", frozenset({"staff"}))
    }


def test_parse_ignores_empty_groups() -> None:
    accounts = parse_users("alice:$argon2id$a:staff,,admins,\n", "users.txt")
    assert accounts["alice"].groups == {"staff", "admins"}


def test_malformed_lines_are_all_reported_with_line_numbers() -> None:
    text = (
        "# users\n"
        "alice:$argon2id$a:staff\n"
        "bad name:$argon2id$x:\n"
        "alice:$argon2id$again:\n"
        "bob:plain-text-password:\n"
        "carol:$argon2id$c:bad group\n"
        "dave\n"
    )

    with pytest.raises(ConfigError) as caught:
        parse_users(text, "users.txt")

    assert caught.value.problems == (
        "users.txt: line 3: 'bad name' is not a valid user name.",
        "users.txt: line 4: user 'alice' appears twice.",
        "users.txt: line 5: user 'bob' has no argon2 hash; expected name:hash:groups.",
        "users.txt: line 6: user 'carol' has an invalid group name.",
        "users.txt: line 7: expected name:hash:groups.",
    )
    assert "plain-text-password" not in str(caught.value)


def test_unreadable_users_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.txt"
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: cannot read the users file")
    ):
        read_users_file(path)


# fingerprint


def test_fingerprint_changes_when_the_hash_changes() -> None:
    first = FAST_HASHER.hash("same-password-1")
    second = FAST_HASHER.hash("same-password-1")

    assert fingerprint(first) != fingerprint(second)
    assert fingerprint(first) == fingerprint(first)
    assert Account("alice", first).fingerprint == fingerprint(first)


def test_fingerprint_is_short_and_reveals_no_hash() -> None:
    password_hash = FAST_HASHER.hash("same-password-1")
    value = fingerprint(password_hash)

    assert len(value) == 12
    assert value not in password_hash
    assert password_hash.rsplit("$", 1)[1][:8] not in value


# Accounts.authenticate


def test_right_password(users_path: Path) -> None:
    account = make_accounts(users_path).authenticate("alice", PASSWORDS["alice"])

    assert account is not None
    assert account.name == "alice"
    assert account.groups == {"staff"}


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("alice", PASSWORDS["bob"]),
        ("alice", ""),
        ("alice", PASSWORDS["alice"] + " "),
        ("Alice", PASSWORDS["alice"]),
        ("nobody", PASSWORDS["alice"]),
        ("", PASSWORDS["alice"]),
    ],
)
def test_wrong_password_or_unknown_user(
    users_path: Path, name: str, password: str
) -> None:
    assert make_accounts(users_path).authenticate(name, password) is None


def test_shared_password_goes_with_an_empty_name() -> None:
    accounts = make_accounts(shared=SHARED_PASSWORD)

    account = accounts.authenticate("", SHARED_PASSWORD)

    assert account is not None
    assert account.name == "shared"
    assert accounts.authenticate("", "wrong-password-55") is None
    assert accounts.authenticate("shared", SHARED_PASSWORD) is None
    assert accounts.has_shared_password
    assert not accounts.has_users


def test_shared_password_and_users_together(users_path: Path) -> None:
    accounts = make_accounts(users_path, shared=SHARED_PASSWORD)

    shared = accounts.authenticate("", SHARED_PASSWORD)
    alice = accounts.authenticate("alice", PASSWORDS["alice"])

    assert shared is not None and shared.name == "shared"
    assert alice is not None and alice.name == "alice"
    assert accounts.authenticate("alice", SHARED_PASSWORD) is None
    assert accounts.authenticate("", PASSWORDS["alice"]) is None
    assert accounts.has_users and accounts.has_shared_password


def test_user_named_like_the_shared_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    write_users(path, {"shared": "shared-user-password"})

    with pytest.raises(ConfigError, match="has the name of the shared password's user"):
        make_accounts(path, shared=SHARED_PASSWORD)


@pytest.mark.parametrize(
    ("name", "password"),
    [
        pytest.param("alice", PASSWORDS["alice"], id="known-right"),
        pytest.param("alice", "wrong-password-55", id="known-wrong"),
        pytest.param("nobody", "wrong-password-55", id="unknown"),
        pytest.param("nobody", PASSWORDS["alice"], id="unknown-with-real-password"),
        pytest.param("", "wrong-password-55", id="no-shared-password"),
    ],
)
def test_every_attempt_costs_exactly_one_verification(
    users_path: Path, name: str, password: str
) -> None:
    """Unknown names cost as much as known ones, so timing tells nothing."""
    hasher = CountingHasher()
    accounts = make_accounts(users_path, hasher=hasher)

    accounts.authenticate(name, password)

    assert hasher.verified == 1


def test_unknown_user_costs_one_verification_without_users_file() -> None:
    hasher = CountingHasher()
    accounts = make_accounts(shared=SHARED_PASSWORD, hasher=hasher)

    assert accounts.authenticate("alice", SHARED_PASSWORD) is None
    assert hasher.verified == 1


def test_broken_stored_hash_fails_after_one_verification(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("alice:$argon2id$broken:\n", encoding="utf-8")
    hasher = CountingHasher()

    assert make_accounts(path, hasher=hasher).authenticate("alice", "x" * 12) is None
    assert hasher.verified == 1


def test_old_hash_is_replaced_on_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.txt"
    old_hash = OTHER_HASHER.hash(PASSWORDS["alice"])
    path.write_text(
        format_users({"alice": Account("alice", old_hash, frozenset({"staff"}))}),
        encoding="utf-8",
    )
    accounts = make_accounts(path)

    with caplog.at_level(logging.INFO, logger="static_gate"):
        account = accounts.authenticate("alice", PASSWORDS["alice"])

    assert account is not None
    stored = read_users_file(path)["alice"]
    assert stored.password_hash != old_hash
    assert stored.password_hash == account.password_hash
    assert stored.groups == {"staff"}
    assert not FAST_HASHER.check_needs_rehash(stored.password_hash)
    assert OTHER_HASHER.check_needs_rehash(stored.password_hash)
    assert account.fingerprint != fingerprint(old_hash)
    assert accounts.authenticate("alice", PASSWORDS["alice"]) is not None
    assert "password hash of 'alice' upgraded to current argon2 parameters" in (
        caplog.messages
    )
    assert PASSWORDS["alice"] not in caplog.text


def test_two_processes_rehashing_at_once_agree_on_the_stored_hash(
    tmp_path: Path,
) -> None:
    """The second one carries the hash the first one stored, not its own."""
    path = tmp_path / "users.txt"
    old_hash = OTHER_HASHER.hash(PASSWORDS["alice"])
    path.write_text(
        format_users({"alice": Account("alice", old_hash)}), encoding="utf-8"
    )
    first, second = make_accounts(path), make_accounts(path)
    second.find("alice")  # its view of the file still holds the old hash

    by_first = first.authenticate("alice", PASSWORDS["alice"])
    by_second = second.authenticate("alice", PASSWORDS["alice"])

    stored = read_users_file(path)["alice"].password_hash
    assert by_first is not None and by_second is not None
    assert by_first.password_hash == by_second.password_hash == stored
    assert by_second.fingerprint == fingerprint(stored)


def test_current_hash_is_left_alone(users_path: Path) -> None:
    before = users_path.read_text(encoding="utf-8")

    assert make_accounts(users_path).authenticate("alice", PASSWORDS["alice"])
    assert users_path.read_text(encoding="utf-8") == before


def test_wrong_password_never_rehashes(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    old_hash = OTHER_HASHER.hash(PASSWORDS["alice"])
    path.write_text(
        format_users({"alice": Account("alice", old_hash)}), encoding="utf-8"
    )

    assert make_accounts(path).authenticate("alice", "wrong-password-55") is None
    assert read_users_file(path)["alice"].password_hash == old_hash


def test_old_shared_hash_is_reported_not_rewritten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = AuthConfig(shared_password_hash=OTHER_HASHER.hash(SHARED_PASSWORD))
    accounts = Accounts(auth, FAST_HASHER)

    with caplog.at_level(logging.WARNING, logger="static_gate"):
        account = accounts.authenticate("", SHARED_PASSWORD)

    assert account is not None
    assert account.password_hash == auth.shared_password_hash
    assert caplog.messages == [
        "[auth] shared_password_hash uses old argon2 parameters; "
        "make a new one with 'static-gate hash-password'"
    ]


def test_find(users_path: Path) -> None:
    accounts = make_accounts(users_path, shared=SHARED_PASSWORD)

    alice = accounts.find("alice")
    shared = accounts.find("shared")

    assert alice is not None and alice.groups == {"staff"}
    assert shared is not None and shared.password_hash.startswith("$argon2")
    assert accounts.find("nobody") is None


def test_find_fresh_sees_a_change_at_once(users_path: Path) -> None:
    accounts = make_accounts(users_path)
    write_users(users_path, {"alice": PASSWORDS["alice"], "dave": "dave-password-55"})

    assert accounts.find("dave") is None
    assert accounts.find("dave", fresh=True) is not None
    assert accounts.find("bob") is None


# UsersFile: reloading


def test_users_file_is_reread_after_the_interval(users_path: Path) -> None:
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    write_users(users_path, {"dave": "dave-password-55"})

    clock.advance(RELOAD_INTERVAL / 2)
    assert set(users.accounts()) == set(PASSWORDS)

    clock.advance(RELOAD_INTERVAL / 2)
    assert set(users.accounts()) == {"dave"}


def test_removed_user_disappears_on_reload(users_path: Path) -> None:
    clock = FakeClock(0.0)
    accounts = make_accounts(users_path, clock=clock)
    assert accounts.authenticate("bob", PASSWORDS["bob"]) is not None

    write_users(users_path, {"alice": PASSWORDS["alice"]})
    clock.advance(RELOAD_INTERVAL)

    assert accounts.authenticate("bob", PASSWORDS["bob"]) is None
    assert accounts.authenticate("alice", PASSWORDS["alice"]) is not None


def test_broken_users_file_keeps_the_last_good_accounts(
    users_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    users_path.write_text("alice:not-a-hash:\n", encoding="utf-8")
    clock.advance(RELOAD_INTERVAL)

    with caplog.at_level(logging.ERROR, logger="static_gate"):
        accounts = users.accounts()

    assert set(accounts) == set(PASSWORDS)
    assert caplog.record_tuples == [
        (
            "static_gate",
            logging.ERROR,
            "users file not reloaded, keeping the last good one: "
            f"{users_path}: line 1: user 'alice' has no argon2 hash; "
            "expected name:hash:groups.",
        )
    ]


def test_broken_users_file_is_logged_once(
    users_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One error line per broken change, not one per reload interval."""
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    users_path.write_text("alice:not-a-hash:\n", encoding="utf-8")

    with caplog.at_level(logging.ERROR, logger="static_gate"):
        for _ in range(5):
            clock.advance(RELOAD_INTERVAL)
            users.accounts()

    assert len(caplog.records) == 1


def test_repaired_users_file_is_picked_up(users_path: Path) -> None:
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    users_path.write_text("alice:not-a-hash:\n", encoding="utf-8")
    clock.advance(RELOAD_INTERVAL)
    users.accounts()

    write_users(users_path, {"dave": "dave-password-55"})
    clock.advance(RELOAD_INTERVAL)

    assert set(users.accounts()) == {"dave"}


def test_deleted_users_file_keeps_the_last_good_accounts(
    users_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    users_path.unlink()
    clock.advance(RELOAD_INTERVAL)

    with caplog.at_level(logging.ERROR, logger="static_gate"):
        assert set(users.accounts()) == set(PASSWORDS)

    assert caplog.messages[0].startswith(
        "users file not reloaded, keeping the last good one: "
    )


def test_reload_is_logged(users_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    users = UsersFile(users_path, clock)
    write_users(users_path, {"dave": "dave-password-55"})

    with caplog.at_level(logging.INFO, logger="static_gate"):
        users.refresh()

    assert caplog.messages == [f"users file reloaded: {users_path} (1 users)"]
    assert "$argon2" not in caplog.text


# update_users_file


def test_update_users_file_applies_the_change(users_path: Path) -> None:
    def remove_bob(accounts: dict[str, Account]) -> None:
        del accounts["bob"]

    update_users_file(users_path, remove_bob)

    assert set(read_users_file(users_path)) == {"alice", "carol"}


def test_update_users_file_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"

    def add_dave(accounts: dict[str, Account]) -> None:
        accounts["dave"] = Account("dave", "$argon2id$d", frozenset({"staff"}))

    update_users_file(path, add_dave)

    assert read_users_file(path) == {
        "dave": Account("dave", "$argon2id$d", frozenset({"staff"}))
    }
    assert path.stat().st_mode & 0o777 == 0o640


def test_update_users_file_holds_the_lock(users_path: Path) -> None:
    """Another process trying to lock the file meanwhile would have to wait."""
    lock_path = users_path.with_name(users_path.name + ".lock")
    attempts: list[bool] = []

    update_users_file(users_path, lambda accounts: attempts.append(can_lock(lock_path)))

    assert attempts == [False]
    assert can_lock(lock_path)


def test_failed_change_leaves_the_file_alone(users_path: Path) -> None:
    before = users_path.read_text(encoding="utf-8")

    def fail(accounts: dict[str, Account]) -> None:
        accounts.clear()
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        update_users_file(users_path, fail)

    assert users_path.read_text(encoding="utf-8") == before


# check_password_strength


@pytest.mark.parametrize("password", ["", "short", "x" * (MIN_PASSWORD_LENGTH - 1)])
def test_short_password_is_refused(password: str) -> None:
    with pytest.raises(
        ValueError,
        match=f"the password must be at least {MIN_PASSWORD_LENGTH} characters long",
    ):
        check_password_strength(password)


@pytest.mark.parametrize(
    "password", ["x" * MIN_PASSWORD_LENGTH, "correct horse battery staple"]
)
def test_long_enough_password_is_accepted(password: str) -> None:
    check_password_strength(password)
