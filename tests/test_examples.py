"""The examples under ``examples/`` load and behave as their README says."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import KEY, BufferedClient, login
from static_gate import ConfigError, Gate, load_config
from static_gate.keys import SECRET_ENV

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
README = EXAMPLES / "README.md"
ENVIRON = {SECRET_ENV: KEY}

SHARED_PASSWORD = "example-password"
USERS = {
    "teacher": "teacher-example-pass",
    "head": "head-example-password",
    "parent": "parent-example-pass",
}

# The table in examples/README.md: path -> status for each visitor.
PATHS = [
    "/public/",
    "/public/index.html",
    "/",
    "/index.html",
    "/parents-evening.html",
    "/staff/",
    "/staff/grades-year9.html",
    "/staff/class-roster-9b.html",
    "/admins/",
    "/admins/staff-directory.html",
    "/admins/admissions-2025.html",
]
EXPECTED = {
    None: {"public": 200, "top": 303, "staff": 303, "admins": 303},
    "parent": {"public": 200, "top": 200, "staff": 403, "admins": 403},
    "teacher": {"public": 200, "top": 200, "staff": 200, "admins": 403},
    "head": {"public": 200, "top": 200, "staff": 200, "admins": 200},
}

_HREF = re.compile(r'href="([^"]+)"')
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d[\d ]{6,}\d")


def area(path: str) -> str:
    first = path.split("/")[1]
    return first if first in ("public", "staff", "admins") else "top"


@pytest.fixture
def example_gate(tmp_path: Path) -> Callable[[str], Gate]:
    """Build a gate over a copy of an example, so that nothing the gate
    writes (a rehashed password) can change the repository."""

    def make(name: str) -> Gate:
        folder = tmp_path / name
        shutil.copytree(EXAMPLES / name, folder)
        return Gate(load_config(folder / "gate.toml", environ=ENVIRON))

    return make


def example_files() -> list[Path]:
    return sorted(path for path in EXAMPLES.rglob("*") if path.is_file())


def html_files() -> list[Path]:
    return [path for path in example_files() if path.suffix == ".html"]


# -- both examples -----------------------------------------------------------


@pytest.mark.parametrize("name", ["shared-password", "multi-user"])
def test_example_config_loads(name: str) -> None:
    config = load_config(EXAMPLES / name / "gate.toml", environ=ENVIRON)

    assert config.static.root is not None
    assert config.static.root.is_dir()


@pytest.mark.parametrize("name", ["shared-password", "multi-user"])
def test_example_takes_its_key_from_the_environment(name: str) -> None:
    config = load_config(EXAMPLES / name / "gate.toml", environ=ENVIRON)

    with pytest.raises(ConfigError, match=SECRET_ENV):
        load_config(EXAMPLES / name / "gate.toml", environ={})
    assert config.session.secret_file is None
    assert not list(EXAMPLES.rglob("*.secret"))


def test_readme_documents_every_example_password() -> None:
    text = README.read_text(encoding="utf-8")

    for password in [SHARED_PASSWORD, *USERS.values()]:
        assert f"`{password}`" in text
        assert len(password) >= 12
    assert "STATIC_GATE_SECRET_KEY=" in text
    assert "never use them" in text.lower()


def test_example_contact_data_is_fictional() -> None:
    """Emails use example.org and phones the range reserved for drama."""
    emails: list[str] = []
    phones: list[str] = []
    for path in html_files():
        text = path.read_text(encoding="utf-8")
        emails += _EMAIL.findall(text)
        phones += _PHONE.findall(text)

    assert emails and phones
    assert all(email.endswith("@example.org") for email in emails)
    # +44 20 7946 0000 to 0999, written with or without spaces.
    numbers = [phone.replace(" ", "") for phone in phones]
    assert all(re.fullmatch(r"\+442079460\d{3}", number) for number in numbers)


@pytest.mark.parametrize("path", html_files(), ids=lambda path: path.name)
def test_example_pages_are_self_contained(path: Path) -> None:
    text = path.read_text(encoding="utf-8").lower()

    assert '<meta name="viewport"' in text
    assert "<script" not in text
    assert "<link" not in text
    assert " src=" not in text
    assert "@import" not in text
    assert "url(" not in text
    assert not [href for href in _HREF.findall(text) if "//" in href]


@pytest.mark.parametrize("path", html_files(), ids=lambda path: path.name)
def test_example_links_lead_to_existing_pages(path: Path) -> None:
    for href in _HREF.findall(path.read_text(encoding="utf-8")):
        if href.startswith(("mailto:", "tel:")):
            continue

        target = (path.parent / href).resolve()
        if href.endswith("/"):
            target /= "index.html"
        assert target.is_file(), f"{path.name} links to missing {href}"


# -- shared password ---------------------------------------------------------


def test_shared_example_sends_visitors_to_sign_in(
    example_gate: Callable[[str], Gate],
) -> None:
    client = BufferedClient(example_gate("shared-password"))

    response = client.get("/grades-autumn-2024.html")

    assert response.status_code == 303
    assert response.headers["Location"] == (
        "/_gate/login?next=%2Fgrades-autumn-2024.html"
    )


def test_shared_example_refuses_a_wrong_password(
    example_gate: Callable[[str], Gate],
) -> None:
    client = BufferedClient(example_gate("shared-password"))

    response = login(client, "", "not-the-password", "/")

    assert response.status_code == 401
    assert client.get("/index.html").status_code == 303


def test_shared_example_password_opens_every_report(
    example_gate: Callable[[str], Gate],
) -> None:
    client = BufferedClient(example_gate("shared-password"))

    signed_in = login(client, "", SHARED_PASSWORD, "/grades-autumn-2024.html")
    index = client.get("/")
    reports = _HREF.findall(index.get_data(as_text=True))
    pages = {href: client.get("/" + href) for href in reports}

    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/grades-autumn-2024.html"
    assert index.status_code == 200
    assert 3 <= len(reports) <= 4
    assert {href: page.status_code for href, page in pages.items()} == dict.fromkeys(
        reports, 200
    )
    assert "Year 9 Mathematics" in pages["grades-autumn-2024.html"].get_data(
        as_text=True
    )


# -- named users -------------------------------------------------------------


@pytest.mark.parametrize("user", [None, "parent", "teacher", "head"])
def test_multi_user_example_gives_the_documented_answers(
    example_gate: Callable[[str], Gate], user: str | None
) -> None:
    client = BufferedClient(example_gate("multi-user"))
    if user is not None:
        assert login(client, user, USERS[user], "/").status_code == 303

    statuses = {path: client.get(path).status_code for path in PATHS}

    expected = {path: EXPECTED[user][area(path)] for path in PATHS}
    assert statuses == expected


def test_multi_user_example_caches_only_public_pages(
    example_gate: Callable[[str], Gate],
) -> None:
    client = BufferedClient(example_gate("multi-user"))
    login(client, "head", USERS["head"], "/")

    public = client.get("/public/index.html")
    staff = client.get("/staff/grades-year9.html")

    assert public.headers["Cache-Control"] == "public, max-age=300"
    assert staff.headers["Cache-Control"] == "private, no-store"


def test_multi_user_example_refuses_a_wrong_password(
    example_gate: Callable[[str], Gate],
) -> None:
    client = BufferedClient(example_gate("multi-user"))

    response = login(client, "teacher", USERS["head"], "/staff/")

    assert response.status_code == 401
    assert client.get("/staff/").status_code == 303
