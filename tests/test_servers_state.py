"""Shared state under real servers: gunicorn workers, two hosts, Redis outages.

Every server here is started by the test on a free loopback port and stopped
by its finalizer.  The gunicorn tests that must reach every worker use sync
workers, which read one request at a time: requests held open at once, all
accepted, are in as many different processes.  The access log names the
worker that served each request, to show it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import PASSWORDS
from servers import (
    SESSION_COOKIE,
    START_SECONDS,
    HeldRequest,
    HttpClient,
    Reply,
    Server,
    accept_backlog,
    form_token,
    gunicorn_server,
    has_module,
    has_program,
    redis_server,
    require,
    sign_in,
    wait_until,
    waitress_server,
)

LOGIN = "/_gate/login"
REPORT = "/report.html"
REPORT_TEXT = "alice@example.org"
PUBLIC = "/public/index.html"
RULES = [{"path": "/public/", "allow": "anyone"}]
WRONG_PASSWORD = "not-the-password-1"

# The flood: threads x logins each, and the signed-in reads meanwhile.
FLOOD_THREADS = 8
FLOOD_LOGINS = 5
FLOOD_READS = 30
FLOOD_SECONDS = 90.0


@pytest.fixture
def launch() -> Iterator[Callable[[Server], Server]]:
    """Start servers for one test; stop every one of them afterwards."""
    started: list[Server] = []

    def start(server: Server) -> Server:
        started.append(server)
        return server.start()

    yield start

    for server in reversed(started):
        server.stop()


@pytest.fixture
def redis_store(tmp_path: Path, launch: Callable[[Server], Server]) -> Server:
    """A redis-server of this test's own on a free port, keeping nothing."""
    require(
        "redis-server",
        has_program("redis-server"),
        "install Debian's redis-server (.ci/run does)",
    )
    require("the redis package", has_module("redis"), "pip install -e '.[test]'")
    return launch(redis_server(tmp_path / "redis"))


def require_gunicorn() -> None:
    require("gunicorn", has_module("gunicorn"), "pip install -e '.[test]'")


def read_with(server: Server, cookie: str, path: str = REPORT) -> Reply:
    """GET *path* as a new browser holding only the session *cookie*."""
    return HttpClient(server.url, cookies={SESSION_COOKIE: cookie}).get(path)


def on_each_worker(
    server: Server, hold: Callable[[int], HeldRequest], workers: int
) -> list[Reply]:
    """Have each of *workers* sync workers answer one request.

    All requests are held open until every one has been accepted (the
    listening socket's accept queue is empty), so no worker holds two.
    """
    require("/proc/net/tcp", accept_backlog(server.port) is not None, "run on Linux")
    held: list[HeldRequest] = []
    try:
        for number in range(workers):
            held.append(hold(number))

        wait_until(
            lambda: accept_backlog(server.port) == 0,
            START_SECONDS,
            f"{workers} held requests accepted by {server.name}",
        )
        return [request.release() for request in held]
    finally:
        for request in held:
            request.close()


def worker_pids(server: Server, marker: str, count: int) -> set[int]:
    """Return the PIDs that served the *count* requests whose query has *marker*."""
    log = server.access_log
    assert log is not None, "only gunicorn_server writes an access log"

    def lines() -> list[str]:
        text = log.read_text() if log.exists() else ""
        return [line for line in text.splitlines() if marker in line]

    # gunicorn writes the line just after the answer has gone out.
    wait_until(lambda: len(lines()) >= count, 5.0, f"{count} lines with {marker!r}")
    # Each line starts with the worker's PID in angle brackets: "<4242> 200 GET".
    return {int(line.split()[0].strip("<>")) for line in lines()}


def redis_keys(store: Server, pattern: str) -> list[str]:
    """Return the keys in the test's Redis that match *pattern*."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=store.port, decode_responses=True)
    try:
        return sorted(str(key) for key in client.keys(pattern))
    finally:
        client.close()


def is_login_redirect(reply: Reply) -> bool:
    return reply.status == 303 and (reply.header("Location") or "").startswith(
        f"{LOGIN}?next=%2Freport.html"
    )


# -- SQLite, the default: one host, four workers ---------------------------


def test_sixth_quick_wrong_password_is_throttled_across_four_workers(
    write_config: Callable[..., Path],
    tmp_path: Path,
    launch: Callable[[Server], Server],
) -> None:
    """With the default config, four workers share one failure count."""
    require_gunicorn()
    config = write_config()
    server = launch(gunicorn_server(config, tmp_path, workers=4, worker_class="sync"))
    visitor = HttpClient(server.url)
    wrong = {
        "csrf_token": form_token(visitor.get(LOGIN)),
        "next": "/",
        "user": "alice",
        "password": WRONG_PASSWORD,
    }

    spread = on_each_worker(
        server,
        lambda number: visitor.hold("POST", f"{LOGIN}?spread={number}", form=wrong),
        4,
    )
    fifth = visitor.post(f"{LOGIN}?attempt=5", wrong)
    sixth = visitor.post(
        f"{LOGIN}?attempt=6", {**wrong, "password": PASSWORDS["alice"]}
    )
    other_user = visitor.post(
        f"{LOGIN}?attempt=7", {**wrong, "user": "bob", "password": PASSWORDS["bob"]}
    )

    assert [reply.status for reply in spread] == [401, 401, 401, 401]
    assert len(worker_pids(server, "spread=", 4)) == 4
    assert fifth.status == 401
    # A count kept in each process would allow max_failures (5) tries per
    # worker, 20 in all; after one try in each of the four, every worker
    # would have counted at most two, and this right password would pass.
    assert sixth.status == 429
    assert int(sixth.header("Retry-After") or "0") > 0
    assert "Too many attempts" in sixth.text
    assert SESSION_COOKIE not in visitor.cookies
    # The address has its own budget, spent by the same six attempts.
    assert other_user.status == 429
    assert (tmp_path / "state" / "static-gate.sqlite3").is_file()


def test_cookie_saved_before_logout_opens_no_report_after_it(
    write_config: Callable[..., Path],
    tmp_path: Path,
    launch: Callable[[Server], Server],
) -> None:
    """Signing out in one worker ends the session in all four."""
    require_gunicorn()
    config = write_config()
    server = launch(gunicorn_server(config, tmp_path, workers=4, worker_class="sync"))
    saved = sign_in(server.url, "alice", PASSWORDS["alice"])

    def hold_read(marker: str) -> Callable[[int], HeldRequest]:
        def hold(number: int) -> HeldRequest:
            reader = HttpClient(server.url, cookies={SESSION_COOKIE: saved})
            return reader.hold("GET", f"{REPORT}?{marker}={number}")

        return hold

    before = on_each_worker(server, hold_read("before"), 4)
    browser = HttpClient(server.url, cookies={SESSION_COOKIE: saved})
    signed_out = browser.sign_out()
    after_in_each = on_each_worker(server, hold_read("after"), 4)
    after = [read_with(server, saved, f"{REPORT}?again={n}") for n in range(12)]

    assert [reply.status for reply in before] == [200, 200, 200, 200]
    assert all(REPORT_TEXT in reply.text for reply in before)
    assert len(worker_pids(server, "before=", 4)) == 4
    assert signed_out.status == 303
    assert signed_out.header("Location") == f"{LOGIN}?signed_out"
    assert SESSION_COOKIE not in browser.cookies
    assert len(worker_pids(server, "after=", 4)) == 4
    for reply in after_in_each + after:
        assert is_login_redirect(reply), (reply.status, reply.header("Location"))
        assert REPORT_TEXT not in reply.text
        assert reply.set_cookies().get(SESSION_COOKIE) == ""


# -- Redis: two hosts ------------------------------------------------------


def redis_config(write_config: Callable[..., Path], store: Server) -> Path:
    return write_config(
        state={"store": f"redis://127.0.0.1:{store.port}/0"}, rules=RULES
    )


def test_redis_logout_on_one_host_ends_the_session_on_the_other(
    write_config: Callable[..., Path],
    tmp_path: Path,
    launch: Callable[[Server], Server],
    redis_store: Server,
) -> None:
    require_gunicorn()
    config = redis_config(write_config, redis_store)
    host_a = launch(gunicorn_server(config, tmp_path, name="gunicorn-a"))
    host_b = launch(waitress_server(config, tmp_path, name="waitress-b"))

    saved = sign_in(host_a.url, "alice", PASSWORDS["alice"])
    stored = redis_keys(redis_store, "static-gate:s:*")
    on_b = read_with(host_b, saved)
    browser = HttpClient(host_a.url, cookies={SESSION_COOKIE: saved})
    signed_out = browser.sign_out()
    after_on_b = read_with(host_b, saved)
    after_on_a = read_with(host_a, saved)

    assert len(stored) == 1
    assert on_b.status == 200
    assert REPORT_TEXT in on_b.text
    assert signed_out.status == 303
    assert redis_keys(redis_store, "static-gate:s:*") == []
    assert is_login_redirect(after_on_b)
    assert is_login_redirect(after_on_a)
    assert not (tmp_path / "state").exists()


def test_redis_outage_fails_closed_and_service_returns_without_restart(
    write_config: Callable[..., Path],
    tmp_path: Path,
    launch: Callable[[Server], Server],
    redis_store: Server,
) -> None:
    require_gunicorn()
    config = redis_config(write_config, redis_store)
    hosts = [
        launch(gunicorn_server(config, tmp_path, name="gunicorn-a")),
        launch(waitress_server(config, tmp_path, name="waitress-b")),
    ]
    host_a = hosts[0]
    bob = sign_in(host_a.url, "bob", PASSWORDS["bob"])
    bob_before = [read_with(host, bob) for host in hosts]

    redis_store.stop()
    visitor = HttpClient(host_a.url)
    form_page = visitor.get(LOGIN)
    refused = visitor.post(
        LOGIN,
        {
            "csrf_token": form_token(form_page),
            "next": "/",
            "user": "alice",
            "password": PASSWORDS["alice"],
        },
    )
    bob_during = [read_with(host, bob) for host in hosts]
    public_during = [HttpClient(host.url).get(PUBLIC) for host in hosts]

    redis_store.start()
    bob_after = [read_with(host, bob) for host in hosts]
    alice = sign_in(host_a.url, "alice", PASSWORDS["alice"])
    alice_after = [read_with(host, alice) for host in hosts]

    assert [reply.status for reply in bob_before] == [200, 200]
    assert form_page.status == 200
    assert refused.status == 503
    assert int(refused.header("Retry-After") or "0") > 0
    assert "Signing in is not possible right now" in refused.text
    assert SESSION_COOKIE not in visitor.cookies
    for reply in bob_during:
        assert reply.status == 503
        assert int(reply.header("Retry-After") or "0") > 0
        assert "Signed-in pages cannot be shown right now" in reply.text
        assert REPORT_TEXT not in reply.text
    assert [reply.status for reply in public_during] == [200, 200]
    # The restarted Redis is empty: bob's session is unknown, so it is over.
    assert all(is_login_redirect(reply) for reply in bob_after)
    assert [reply.status for reply in alice_after] == [200, 200]
    assert all(REPORT_TEXT in reply.text for reply in alice_after)


# -- a flood of logins -----------------------------------------------------


def test_signed_in_reads_succeed_during_a_login_flood(
    write_config: Callable[..., Path],
    tmp_path: Path,
    launch: Callable[[Server], Server],
) -> None:
    """Password checks are bounded per process; reads need none."""
    require_gunicorn()
    config = write_config(throttle={"concurrent_checks": 1, "max_failures": 1000})
    server = launch(gunicorn_server(config, tmp_path, workers=2, threads=4))
    saved = sign_in(server.url, "alice", PASSWORDS["alice"])
    answers: list[tuple[int, str | None]] = []
    errors: list[str] = []

    def flood() -> None:
        client = HttpClient(server.url)
        try:
            form = {
                "csrf_token": form_token(client.get(LOGIN)),
                "next": "/",
                "user": "alice",
                "password": WRONG_PASSWORD,
            }
            for _ in range(FLOOD_LOGINS):
                reply = client.post(LOGIN, form)
                answers.append((reply.status, reply.header("Retry-After")))
        except Exception as error:  # the assertions below report it
            errors.append(repr(error))

    threads = [
        threading.Thread(target=flood, daemon=True) for _ in range(FLOOD_THREADS)
    ]
    for thread in threads:
        thread.start()

    reads = [read_with(server, saved, f"{REPORT}?read={n}") for n in range(FLOOD_READS)]
    deadline = time.monotonic() + FLOOD_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

    assert not any(thread.is_alive() for thread in threads)
    assert [reply.status for reply in reads] == [200] * FLOOD_READS
    assert all(REPORT_TEXT in reply.text for reply in reads)
    assert errors == []
    assert len(answers) == FLOOD_THREADS * FLOOD_LOGINS
    assert {status for status, _ in answers} <= {401, 503}, answers
    assert (401, None) in answers
    assert all(retry_after for status, retry_after in answers if status == 503)
