"""The sign-in pages in a real browser: Playwright driving Debian's Chromium.

The browser is never downloaded: the launch arguments point Playwright at
``/usr/bin/chromium`` (or ``$CHROMIUM``).  Without it, or without Playwright,
these tests skip locally and fail when ``CI`` is set.  Screenshots of the
login page go to ``test-artifacts/`` at the root of the repository.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from conftest import FAST_HASHER, PASSWORDS, SHARED_PASSWORD, FakeClock
from static_gate import Gate, load_config

try:
    import pytest_playwright  # noqa: F401  (the page fixture and its options)
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the environment
    MISSING = "pytest-playwright is not installed; pip install -e '.[test]'"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {MISSING}", pytrace=False)

    pytest.skip(MISSING, allow_module_level=True)

pytestmark = pytest.mark.filterwarnings(
    # pytest-playwright's own session-scoped base_url fixture, which pytest 9
    # deprecates; the warning text spans lines, hence (?s).
    "ignore:(?s).*'base_url' fixture:pytest.PytestRemovedIn10Warning"
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
#: Longest wait for any browser action or expectation, in milliseconds.
TIMEOUT_MS = 10_000

REPORT = "/report.html?week=3"
REPORT_TEXT = "alice@example.org, +44 20 7946 0000"
LOGIN_FOR_REPORT = f"/_gate/login?next={quote(REPORT, safe='')}"


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any],
) -> dict[str, Any]:
    """Launch Debian's Chromium; keeps pytest-playwright's --headed, --slowmo."""
    if not Path(CHROMIUM).is_file():
        message = f"{CHROMIUM} is missing; apt-get install chromium, or set CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {message}", pytrace=False)

        pytest.skip(message)

    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}


@pytest.fixture(autouse=True)
def bounded_waits(page: Page) -> None:
    page.context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)


class QuietHandler(WSGIRequestHandler):
    """Log errors only, not one line per request."""

    def log_request(self, *args: Any) -> None:
        pass


def serve(gate: Gate) -> Iterator[str]:
    """Serve *gate* on a free loopback port; yield its base URL."""
    server = make_server(
        "127.0.0.1", 0, gate, threaded=True, request_handler=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def live_server(make_gate: Callable[..., Gate]) -> Iterator[str]:
    """A gate with a users file in front of ``site``, served over loopback."""
    yield from serve(make_gate())


@pytest.fixture
def shared_server(write_config: Callable[..., Path], clock: FakeClock) -> Iterator[str]:
    """A gate with one shared password and no users file."""
    path = write_config(auth=None)
    shared_hash = FAST_HASHER.hash(SHARED_PASSWORD)
    with path.open("a", encoding="utf-8") as file:
        file.write(f'[auth]\nshared_password_hash = "{shared_hash}"\n')

    gate = Gate(load_config(path, environ={}), hasher=FAST_HASHER, clock=clock)
    yield from serve(gate)


def session_cookie(page: Page) -> dict[str, Any] | None:
    for cookie in page.context.cookies():
        if cookie["name"] == "static_gate":
            return dict(cookie)

    return None


def test_keyboard_only_sign_in_read_and_sign_out(page: Page, live_server: str) -> None:
    """Sign in, read a report and sign out with the keyboard alone."""
    page.goto(live_server + REPORT)

    expect(page).to_have_url(live_server + LOGIN_FOR_REPORT)
    expect(page.locator("#user")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(PASSWORDS["alice"])
    page.keyboard.press("Enter")

    expect(page).to_have_url(live_server + REPORT)
    expect(page.locator("body")).to_have_text(REPORT_TEXT)
    cookie = session_cookie(page)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"

    page.goto(live_server + "/_gate/logout")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign out")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page).to_have_url(live_server + "/_gate/login?signed_out")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    assert session_cookie(page) is None

    page.goto(live_server + REPORT)
    expect(page).to_have_url(live_server + LOGIN_FOR_REPORT)
    expect(page.locator("body")).not_to_contain_text(REPORT_TEXT)


def test_wrong_password_shows_error_and_focuses_password(
    page: Page, live_server: str
) -> None:
    page.goto(live_server + LOGIN_FOR_REPORT)
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-password")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.keyboard.press("Enter")

    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.locator("#password")).to_be_focused()
    expect(page.locator("#user")).to_have_value("alice")
    assert session_cookie(page) is None


@pytest.mark.parametrize("width", [375, 1280])
def test_login_page_fits_the_screen(page: Page, live_server: str, width: int) -> None:
    """No horizontal scrolling, and the whole form in view; saves a screenshot."""
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(live_server + LOGIN_FOR_REPORT)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"login-{width}.png", full_page=True)

    inner_width = page.evaluate("window.innerWidth")
    assert inner_width == width
    assert page.evaluate("document.documentElement.scrollWidth") <= inner_width
    for control in (
        page.locator("#user"),
        page.locator("#password"),
        page.get_by_role("button", name="Sign in"),
    ):
        box = control.bounding_box()
        assert box is not None
        assert 0 <= box["x"] and box["x"] + box["width"] <= inner_width


def test_shared_password_sign_in_with_keyboard(page: Page, shared_server: str) -> None:
    page.goto(shared_server + REPORT)

    expect(page).to_have_url(shared_server + LOGIN_FOR_REPORT)
    expect(page.locator("#user")).to_have_count(0)
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(SHARED_PASSWORD)
    page.keyboard.press("Enter")

    expect(page).to_have_url(shared_server + REPORT)
    expect(page.locator("body")).to_have_text(REPORT_TEXT)
    cookie = session_cookie(page)
    assert cookie is not None
    assert cookie["httpOnly"] is True
