"""Reading gate.toml: frozen results, durations, and errors an admin can act on."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST_HASHER, KEY, SHARED_PASSWORD
from static_gate.config import (
    Config,
    load_config,
    parse_config,
    users_file_setting,
)
from static_gate.errors import ConfigError, StaticGateError
from static_gate.keys import SECRET_ENV, SecretKey
from static_gate.rules import ANYONE, LISTED, NOBODY, SIGNED_IN, Rule
from static_gate.shares import ShareConfig
from static_gate.tables import parse_duration

WriteConfig = Callable[..., Path]


def load_problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Load *path*, expect a ConfigError, and return its problems."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={} if environ is None else environ)

    return list(caught.value.problems)


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")


# A valid configuration


def test_full_config_round_trip(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<form></form>", encoding="utf-8")
    shared_hash = FAST_HASHER.hash(SHARED_PASSWORD)
    path = write_config(
        static={
            "root": "site",
            "follow_symlinks": True,
            "directory_listing": True,
            "precompressed": False,
            "case_sensitive": False,
        },
        pages={
            "prefix": "/auth/",
            "title": "Reports",
            "message": "Ask Carol for an account.",
            "template": "page.html",
        },
        auth={"shared_password_hash": shared_hash, "shared_user": "guest"},
        session={
            "lifetime": "1h30m",
            "idle_timeout": "20m",
            "cookie_name": "reports_gate",
            "secure_cookie": True,
        },
        proxy={"trusted": ["127.0.0.1", "10.0.0.0/8", "::1"]},
        share={
            "base_url": "https://example.org/reports/",
            "creators": ["staff", "admins"],
            "max_expires": "14d",
        },
        rules=[
            {"path": "/public/", "allow": "anyone", "cache_control": "max-age=60"},
            {"path": "/staff/", "groups": ["staff"]},
            {"path": "/admins/", "users": ["carol"], "groups": ["admins"]},
            {"path": "/closed/", "allow": "nobody"},
            {"path": "/report.html"},
        ],
    )

    config = load_config(path, environ={})

    assert config.source == path
    assert config.static.root == (tmp_path / "site").resolve()
    assert config.static.follow_symlinks is True
    assert config.static.directory_listing is True
    assert config.static.precompressed is False
    assert config.static.case_sensitive is False
    assert config.pages.prefix == "/auth/"
    assert config.pages.title == "Reports"
    assert config.pages.message == "Ask Carol for an account."
    assert config.pages.template == tmp_path / "page.html"
    assert config.auth.users_file == tmp_path / "users.txt"
    assert config.auth.shared_password_hash == shared_hash
    assert config.auth.shared_user == "guest"
    assert config.session.secret_keys == (SecretKey(KEY.encode()),)
    assert config.session.secret_file == tmp_path / "gate.secret"
    assert config.session.lifetime == 5400
    assert config.session.idle_timeout == 1200
    assert config.session.cookie_name == "reports_gate"
    assert config.session.secure_cookie is True
    assert config.proxy.trusted == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert config.share == ShareConfig(
        "https://example.org/reports", frozenset({"staff", "admins"}), 14 * 86400
    )
    assert config.rules == (
        Rule("/public/", ANYONE, cache_control="max-age=60"),
        Rule("/staff/", LISTED, groups=frozenset({"staff"})),
        Rule("/admins/", LISTED, frozenset({"carol"}), frozenset({"admins"})),
        Rule("/closed/", NOBODY),
        Rule("/report.html", SIGNED_IN),
    )


def test_defaults(make_config: Callable[..., Config], site: Path) -> None:
    config = make_config()

    assert config.static.root == site.resolve()
    assert config.static.follow_symlinks is False
    assert config.static.directory_listing is False
    assert config.static.precompressed is True
    assert config.static.case_sensitive is None
    assert config.pages.prefix == "/_gate/"
    assert config.auth.shared_password_hash is None
    assert config.session.lifetime == 8 * 3600
    assert config.session.idle_timeout == 30 * 60
    assert config.session.cookie_name == "static_gate"
    assert config.session.secure_cookie is None
    assert config.proxy.trusted == ()
    assert config.share == ShareConfig("", frozenset(), 30 * 86400)
    assert config.rules == ()


@pytest.mark.parametrize(("value", "expected"), [("auto", None), (False, False)])
def test_secure_cookie_values(
    make_config: Callable[..., Config], value: Any, expected: bool | None
) -> None:
    assert (
        make_config(session={"secure_cookie": value}).session.secure_cookie is expected
    )


def test_relative_paths_follow_the_config_file_not_the_working_folder(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(static={"root": "site"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path, environ={})

    assert config.static.root == (tmp_path / "site").resolve()
    assert config.auth.users_file == tmp_path / "users.txt"
    assert config.session.secret_file == tmp_path / "gate.secret"


def test_relative_config_path_is_made_absolute(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config()
    monkeypatch.chdir(tmp_path)

    config = load_config("gate.toml", environ={})

    assert config.source == tmp_path / "gate.toml"
    assert config.auth.users_file == tmp_path / "users.txt"


def test_static_root_may_be_left_out_to_guard_an_app(
    make_config: Callable[..., Config],
) -> None:
    assert make_config(static=None).static.root is None


def test_parse_config_takes_text(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config()
    config = parse_config(path.read_text(encoding="utf-8"), path, {})
    assert config.auth.users_file == tmp_path / "users.txt"


def test_environment_key_wins_over_the_key_file(write_config: WriteConfig) -> None:
    path = write_config(session={"secret_file": "missing.secret"})
    config = load_config(path, environ={SECRET_ENV: "e" * 40})
    assert config.session.secret_keys == (SecretKey(b"e" * 40),)


def test_os_environ_is_the_default_environment(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "o" * 40)
    assert load_config(write_config()).session.secret_keys == (SecretKey(b"o" * 40),)


def test_config_is_frozen(make_config: Callable[..., Config]) -> None:
    config = make_config(rules=[{"path": "/public/", "allow": "anyone"}])

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.session.lifetime = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.static = config.static  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rules[0].allow = NOBODY  # type: ignore[misc]
    assert isinstance(config.rules, tuple)


def test_config_repr_hides_the_key(make_config: Callable[..., Config]) -> None:
    assert KEY not in repr(make_config())


# parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45),
        ("30m", 1800),
        ("8h", 28800),
        ("2d", 172800),
        ("1h30m", 5400),
        ("0h30m", 1800),
        ("1d2h3m4s", 93784),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["thirty", "0m", "0s0m", "", "30", "m", "1h 30m", "-5m", "30M", "1.5h", "30m!"],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# One problem per case; "{tmp}" stands for the test's folder.
BAD_SETTINGS = [
    pytest.param(
        {"colours": {"a": 1}},
        "gate.toml: [colours] is not a known table; "
        "use auth, pages, proxy, rules, session, share, state, static, throttle, "
        "trail.",
        id="unknown-table",
    ),
    pytest.param(
        {"static": {"colour": "red"}},
        "gate.toml: [static] colour is not a known key; [static] takes "
        "case_sensitive, directory_listing, follow_symlinks, offload, "
        "offload_prefix, precompressed, root.",
        id="unknown-key",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "anyone", "colour": "red"}]},
        "gate.toml: [[rules]] 1 colour is not a known key; [[rules]] 1 takes "
        "allow, cache_control, groups, path, users.",
        id="unknown-rule-key",
    ),
    pytest.param(
        {"static": {"follow_symlinks": "yes"}},
        "gate.toml: [static] follow_symlinks must be true or false, got 'yes'.",
        id="wrong-type-flag",
    ),
    pytest.param(
        {"static": {"case_sensitive": "no"}},
        "gate.toml: [static] case_sensitive must be true or false, got 'no'.",
        id="wrong-type-case-sensitive",
    ),
    pytest.param(
        {"pages": {"title": 5}},
        "gate.toml: [pages] title must be a string, got 5.",
        id="wrong-type-text",
    ),
    pytest.param(
        {"static": {"root": 5}},
        "gate.toml: [static] root must be a path (a string), got 5.",
        id="wrong-type-path",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "users": "alice"}]},
        "gate.toml: [[rules]] 1 users must be a list of user names, got 'alice'.",
        id="wrong-type-users",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "groups": ["bad group"]}]},
        "gate.toml: [[rules]] 1 groups has 'bad group', which is not a valid "
        "group name.",
        id="bad-group-name",
    ),
    pytest.param(
        {"static": {"root": "nowhere"}},
        "gate.toml: [static] root must be an existing folder, got '{tmp}/nowhere'.",
        id="missing-root",
    ),
    pytest.param(
        {"static": {"root": "users.txt"}},
        "gate.toml: [static] root must be an existing folder, got '{tmp}/users.txt'.",
        id="root-is-a-file",
    ),
    pytest.param(
        {"session": {"lifetime": "thirty"}},
        'gate.toml: [session] lifetime must be a duration such as "30m", '
        "got 'thirty'; use a whole number followed by s, m, h or d.",
        id="duration-word",
    ),
    pytest.param(
        {"session": {"lifetime": "0m"}},
        'gate.toml: [session] lifetime must be a duration such as "30m", '
        "got '0m'; use a whole number followed by s, m, h or d.",
        id="duration-zero",
    ),
    pytest.param(
        {"session": {"lifetime": 5}},
        'gate.toml: [session] lifetime must be a duration such as "30m", '
        "got 5; use a whole number followed by s, m, h or d.",
        id="duration-number",
    ),
    pytest.param(
        {"session": {"idle_timeout": "1h 30m"}},
        'gate.toml: [session] idle_timeout must be a duration such as "30m", '
        "got '1h 30m'; use a whole number followed by s, m, h or d.",
        id="duration-with-space",
    ),
    pytest.param(
        {"session": {"lifetime": "1h", "idle_timeout": "2h"}},
        "gate.toml: [session] idle_timeout (7200 s) is longer than [session] "
        "lifetime (3600 s); make it shorter or equal.",
        id="idle-longer-than-lifetime",
    ),
    pytest.param(
        {"session": {"cookie_name": "__Host-gate"}},
        "gate.toml: [session] cookie_name must be letters, digits, '-' or '_' "
        "without a leading '__', got '__Host-gate'.",
        id="cookie-name-prefix",
    ),
    pytest.param(
        {"session": {"cookie_name": "gate session"}},
        "gate.toml: [session] cookie_name must be letters, digits, '-' or '_' "
        "without a leading '__', got 'gate session'.",
        id="cookie-name-space",
    ),
    pytest.param(
        {"session": {"cookie_name": "gate;x=1"}},
        "got 'gate;x=1'.",
        id="cookie-name-semicolon",
    ),
    pytest.param(
        {"session": {"cookie_name": ""}},
        "gate.toml: [session] cookie_name must be letters, digits, '-' or '_' "
        "without a leading '__', got ''.",
        id="cookie-name-empty",
    ),
    pytest.param(
        {"session": {"secure_cookie": "yes"}},
        'gate.toml: [session] secure_cookie must be "auto", true or false, '
        "got 'yes'.",
        id="secure-cookie-word",
    ),
    pytest.param(
        {"session": {"secure_cookie": 1}},
        'gate.toml: [session] secure_cookie must be "auto", true or false, got 1.',
        id="secure-cookie-number",
    ),
    pytest.param(
        {"proxy": {"trusted": ["127.0.0.1", "localhost"]}},
        "gate.toml: [proxy] trusted has 'localhost'; use addresses or networks "
        'such as "127.0.0.1" or "10.0.0.0/8".',
        id="trusted-name",
    ),
    pytest.param(
        {"proxy": {"trusted": ["10.0.0.0/33"]}},
        "gate.toml: [proxy] trusted has '10.0.0.0/33';",
        id="trusted-bad-network",
    ),
    pytest.param(
        {"proxy": {"trusted": "10.0.0.1"}},
        "gate.toml: [proxy] trusted must be a list of addresses, got '10.0.0.1'.",
        id="trusted-not-a-list",
    ),
    pytest.param(
        {"pages": {"prefix": "/_gate"}},
        'gate.toml: [pages] prefix must be a folder path such as "/_gate/", '
        "got '/_gate'.",
        id="prefix-without-slash",
    ),
    pytest.param(
        {"pages": {"prefix": "/"}},
        "gate.toml: [pages] prefix must be a folder path such as \"/_gate/\", got '/'.",
        id="prefix-root",
    ),
    pytest.param(
        {"pages": {"prefix": "gate/"}},
        "got 'gate/'.",
        id="prefix-relative",
    ),
    pytest.param(
        {"pages": {"prefix": "/a/../gate/"}},
        "got '/a/../gate/'.",
        id="prefix-not-canonical",
    ),
    pytest.param(
        {"rules": [{"path": "/staff//", "allow": "nobody"}]},
        'gate.toml: [[rules]] 1 path must be a canonical path such as "/reports/" '
        "(a folder) or \"/index.html\" (one file), got '/staff//'.",
        id="rule-double-slash",
    ),
    pytest.param(
        {"rules": [{"path": "staff/", "allow": "nobody"}]},
        "gate.toml: [[rules]] 1 path must be a canonical path",
        id="rule-relative",
    ),
    pytest.param(
        {"rules": [{"path": "/a/./b/", "allow": "nobody"}]},
        "got '/a/./b/'.",
        id="rule-dot",
    ),
    pytest.param(
        {"rules": [{"path": "/a/../staff/", "allow": "nobody"}]},
        "got '/a/../staff/'.",
        id="rule-dotdot",
    ),
    pytest.param(
        {"rules": [{"path": "/staff%2F", "allow": "nobody"}]},
        "got '/staff%2F'.",
        id="rule-percent",
    ),
    pytest.param(
        {"rules": [{"path": "/staff./", "allow": "nobody"}]},
        "got '/staff./'.",
        id="rule-trailing-dot",
    ),
    pytest.param(
        {"rules": [{"allow": "nobody"}]},
        "gate.toml: [[rules]] 1 path must be a canonical path",
        id="rule-without-path",
    ),
    pytest.param(
        {
            "rules": [
                {"path": "/staff/", "allow": "anyone"},
                {"path": "/public/", "allow": "anyone"},
                {"path": "/staff/", "allow": "nobody"},
            ]
        },
        "gate.toml: [[rules]] 3 repeats path '/staff/'; "
        "each path may have one rule only, whatever its case.",
        id="rule-repeated",
    ),
    pytest.param(
        {
            "rules": [
                {"path": "/staff/", "allow": "nobody"},
                {"path": "/Staff/", "allow": "anyone"},
            ]
        },
        "gate.toml: [[rules]] 2 repeats path '/Staff/'; "
        "each path may have one rule only, whatever its case.",
        id="rule-repeated-other-case",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "anyone", "users": ["alice"]}]},
        "gate.toml: [[rules]] 1 allow 'anyone' contradicts users/groups; "
        "give allow or the lists.",
        id="allow-with-users",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "nobody", "groups": ["staff"]}]},
        "gate.toml: [[rules]] 1 allow 'nobody' contradicts users/groups;",
        id="allow-with-groups",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "everyone"}]},
        "gate.toml: [[rules]] 1 allow must be one of 'anyone', 'signed-in', "
        "'nobody', got 'everyone'.",
        id="allow-unknown",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "listed"}]},
        "gate.toml: [[rules]] 1 allow must be one of",
        id="allow-listed-is-not-a-value",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "users": []}]},
        "gate.toml: [[rules]] 1 users and groups are empty, so nobody could read.",
        id="users-empty",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "users": [], "groups": []}]},
        "gate.toml: [[rules]] 1 users and groups are empty, so nobody could read.",
        id="users-and-groups-empty",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "cache_control": "max-age=60"}]},
        'gate.toml: [[rules]] 1 cache_control is only allowed with allow = "anyone"; '
        "protected pages are never cached.",
        id="cache-control-default-rule",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "groups": ["staff"], "cache_control": "public"}]},
        'gate.toml: [[rules]] 1 cache_control is only allowed with allow = "anyone";',
        id="cache-control-listed-rule",
    ),
    pytest.param(
        {"rules": [{"path": "/x/", "allow": "signed-in", "cache_control": "public"}]},
        'gate.toml: [[rules]] 1 cache_control is only allowed with allow = "anyone";',
        id="cache-control-signed-in-rule",
    ),
    pytest.param(
        {"rules": [{"path": "/_gate/login", "allow": "anyone"}]},
        "gate.toml: [[rules]] 1 path '/_gate/login' overlaps the gate's own pages "
        "at '/_gate/'.",
        id="rule-under-gate",
    ),
    pytest.param(
        {"rules": [{"path": "/_gate", "allow": "nobody"}]},
        "gate.toml: [[rules]] 1 path '/_gate' overlaps the gate's own pages",
        id="rule-is-gate-folder",
    ),
    pytest.param(
        {
            "pages": {"prefix": "/auth/"},
            "rules": [{"path": "/auth/", "allow": "anyone"}],
        },
        "gate.toml: [[rules]] 1 path '/auth/' overlaps the gate's own pages "
        "at '/auth/'.",
        id="rule-under-custom-gate",
    ),
    pytest.param(
        {"auth": {"shared_password_hash": "$2b$12$notargon2"}},
        "gate.toml: [auth] shared_password_hash must be an argon2 hash made by "
        "'static-gate hash-password', not a password.",
        id="shared-hash-not-argon2",
    ),
    pytest.param(
        {"auth": None},
        "gate.toml: [auth] has neither users_file nor shared_password_hash, "
        "so nobody could sign in; set at least one.",
        id="no-way-to-sign-in",
    ),
    pytest.param(
        {"auth": {"users_file": "missing-users.txt"}},
        "gate.toml: [auth] users_file must be an existing file, got "
        "'{tmp}/missing-users.txt'; create it with 'static-gate user add NAME'.",
        id="missing-users-file",
    ),
    pytest.param(
        {"auth": {"shared_user": "bad name"}},
        "gate.toml: [auth] shared_user must be a valid user name, got 'bad name'.",
        id="bad-shared-user",
    ),
    pytest.param(
        {"share": {"base_url": "example.org"}},
        "gate.toml: [share] base_url must be the address the site is reached at, "
        'such as "https://example.org" or "https://example.org/reports", without '
        "a query, fragment or user name, got 'example.org'.",
        id="share-base-url-no-scheme",
    ),
    pytest.param(
        {"share": {"base_url": "https://example.org/?x=1"}},
        "gate.toml: [share] base_url must be the address the site is reached at",
        id="share-base-url-query",
    ),
    pytest.param(
        {"share": {"base_url": "https://admin@example.org"}},
        "gate.toml: [share] base_url must be the address the site is reached at",
        id="share-base-url-user",
    ),
    pytest.param(
        {"share": {"creators": ["staff", "no spaces"]}},
        "gate.toml: [share] creators has 'no spaces', which is not a valid group name.",
        id="share-creators-bad-group",
    ),
    pytest.param(
        {"share": {"max_expires": "a month"}},
        'gate.toml: [share] max_expires must be a duration such as "30m", got '
        "'a month'; use a whole number followed by s, m, h or d.",
        id="share-max-expires",
    ),
    pytest.param(
        {"pages": {"template": "missing.html"}},
        "gate.toml: [pages] template must be an existing file, got "
        "'{tmp}/missing.html'.",
        id="missing-template",
    ),
]


@pytest.mark.parametrize(("tables", "expected"), BAD_SETTINGS)
def test_bad_setting_is_reported(
    write_config: WriteConfig,
    tmp_path: Path,
    tables: dict[str, Any],
    expected: str,
) -> None:
    """Each message names the file, the table and key, and what is expected."""
    path = write_config(**tables)
    expected = expected.replace("{tmp}", str(tmp_path))

    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_config(path, environ={})

    for problem in caught.value.problems:
        assert problem.startswith("gate.toml: ")
        assert "\n" not in problem
        assert problem.endswith(".")


def test_config_error_is_a_static_gate_error() -> None:
    assert issubclass(ConfigError, StaticGateError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("static = 5\n", "gate.toml: [static] must be a table."),
        ("rules = 5\n", "gate.toml: rules must be [[rules]] tables."),
        ("rules = [1]\n", "gate.toml: rule 1 must be a table."),
    ],
)
def test_misshapen_table_is_reported(
    write_config: WriteConfig, text: str, expected: str
) -> None:
    path = write_config(static=None)
    prepend(path, text)

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path, environ={})


def test_non_printable_cache_control_is_refused(write_config: WriteConfig) -> None:
    """A header value with a line break could inject a second header."""
    path = write_config()
    with path.open("a", encoding="utf-8") as file:
        file.write('[[rules]]\npath = "/x/"\nallow = "anyone"\n')
        file.write('cache_control = "public\\r\\nSet-Cookie: a=b"\n')

    with pytest.raises(
        ConfigError,
        match=re.escape("[[rules]] 1 cache_control must be printable text."),
    ):
        load_config(path, environ={})


def test_invalid_toml(write_config: WriteConfig) -> None:
    path = write_config()
    path.write_text("[static\nroot = 'site'\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML (")):
        load_config(path, environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    expected = (
        f"{path}: cannot read the configuration file (No such file or directory)."
    )

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path, environ={})


def test_unreadable_config_file(tmp_path: Path) -> None:
    """A folder stands in for an unreadable file, since the tests may run as root."""
    path = tmp_path / "gate.toml"
    path.mkdir()

    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: cannot read the configuration file (")
    ):
        load_config(path, environ={})


def test_config_file_not_utf_8(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_bytes(b"[pages]\ntitle = '\xff'\n")

    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: the configuration file is not UTF-8.")
    ):
        load_config(path, environ={})


def test_missing_key_file(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(session={"secret_file": "missing.secret"})
    expected = (
        f"gate.toml: [session] secret_file '{tmp_path}/missing.secret' cannot be "
        "read (No such file or directory); if it is missing, create it with "
        f"'(umask 077; static-gate secret > {tmp_path}/missing.secret)', else let "
        "this process's user read it."
    )

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path, environ={})


def test_no_key_source(write_config: WriteConfig) -> None:
    path = write_config(session=None)
    expected = (
        f"gate.toml: [session] secret_file is not set and neither is {SECRET_ENV}; "
        "set one of them ('static-gate init' writes a key file)."
    )

    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path, environ={})


def test_all_problems_are_reported_together(write_config: WriteConfig) -> None:
    path = write_config(
        colours={"a": 1},
        static={"root": "nowhere"},
        session={"lifetime": "thirty", "cookie_name": "__x"},
        pages={"prefix": "gate"},
        rules=[{"path": "/staff//"}, {"path": "/x/", "allow": "everyone"}],
    )

    problems = load_problems(path, environ={SECRET_ENV: "too-short"})

    expected = [
        "[colours] is not a known table",
        "[static] root must be an existing folder",
        "[session] lifetime must be a duration",
        "[session] cookie_name must be",
        "[pages] prefix must be a folder path",
        "[[rules]] 1 path must be a canonical path",
        "[[rules]] 2 allow must be one of",
        f"environment variable {SECRET_ENV}: key 1 is 9 bytes long",
    ]
    assert len(problems) == len(expected)
    for fragment in expected:
        assert sum(fragment in problem for problem in problems) == 1, fragment

    for problem in problems:
        assert "\n" not in problem


@pytest.mark.parametrize(
    ("tables", "environ", "secret"),
    [
        pytest.param(
            {}, {SECRET_ENV: "short-secret-value"}, "short-secret-value", id="env-key"
        ),
        pytest.param(
            {"auth": {"shared_password_hash": "correct horse battery staple"}},
            {},
            "correct horse battery staple",
            id="plain-shared-password",
        ),
        pytest.param(
            {"session": {"secret_key": "s3cr3t-pasted-into-the-config"}},
            {},
            "s3cr3t-pasted-into-the-config",
            id="key-pasted-into-config",
        ),
    ],
)
def test_no_secret_in_messages(
    write_config: WriteConfig,
    tables: dict[str, Any],
    environ: dict[str, str],
    secret: str,
) -> None:
    problems = load_problems(write_config(**tables), environ)

    assert problems
    for problem in problems:
        assert secret not in problem


def test_short_key_file_is_not_echoed(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config()
    (tmp_path / "gate.secret").write_text("short-file-key\n", encoding="utf-8")

    problems = load_problems(path)

    assert len(problems) == 1
    assert "needs at least 32 bytes" in problems[0]
    assert "short-file-key" not in problems[0]


def test_world_readable_key_file_is_refused(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config()
    (tmp_path / "gate.secret").chmod(0o644)

    with pytest.raises(
        ConfigError, match="can be read or changed by other users on this machine"
    ):
        load_config(path, environ={})


# users_file_setting


def test_users_file_setting(write_config: WriteConfig, tmp_path: Path) -> None:
    assert users_file_setting(write_config()) == tmp_path / "users.txt"


def test_users_file_setting_needs_no_key(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config()
    (tmp_path / "gate.secret").unlink()
    assert users_file_setting(path) == tmp_path / "users.txt"


@pytest.mark.parametrize(
    "text",
    [
        "[static]\nroot = 'site'\n",
        "[auth]\nshared_password_hash = '$argon2id$x'\n",
        "[auth]\nusers_file = ''\n",
        "auth = 5\n",
    ],
)
def test_users_file_setting_without_a_users_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")

    assert users_file_setting(path) is None


def test_users_file_setting_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text("[auth\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML (")):
        users_file_setting(path)


def test_users_file_setting_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"

    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: cannot read the configuration file (")
    ):
        users_file_setting(path)
