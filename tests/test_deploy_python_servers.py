"""The gate under real Python servers: gunicorn, waitress, ``static-gate serve``.

Each server is started on a free loopback port and stopped by its PID, once
per module: gunicorn with the repository's ``examples/gunicorn/gunicorn.conf.py``
(only the address and the worker count set on the command line), waitress
with ``python -m waitress``, and the command line's own waitress server.  The
graceful reload test starts a gunicorn of its own, since it signals it.

Requests are written as raw bytes on a socket, so no client normalises a
hostile path before the server sees it, and read back with ``http.client``'s
parser; the bytes on the wire stay available to check what a 304 or 206
really sent.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import random
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import KEY, PASSWORDS, render_toml, write_users
from servers import (
    HTTP_SECONDS,
    LOOPBACK,
    SESSION_COOKIE,
    START_SECONDS,
    HttpClient,
    Server,
    answers_http,
    free_port,
    gate_environment,
    has_module,
    require,
    sign_in,
    wait_until,
    waitress_server,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples/gunicorn/gunicorn.conf.py"

LOGIN = "/_gate/login"
REPORT = "/report.html"
REPORT_TEXT = "alice@example.org"
ONE_MB = "/downloads/one-mb.bin"
ONE_MB_BYTES = random.Random(1).randbytes(1 << 20)
BIG_FILE = "/downloads/big.bin"

# Unique bytes in every file the gate must never serve, and in /etc/passwd.
OUTSIDE_SECRET = b"outside-the-root-3f9a"
DOT_FOLDER_SECRET = b"dot-folder-secret-8c2e"
DOT_FILE_SECRET = b"dot-file-secret-51b0"
SECRETS = (OUTSIDE_SECRET, DOT_FOLDER_SECRET, DOT_FILE_SECRET, b"root:x:0:0")

# Raw request targets that try to reach past the gate's root or into dot
# files.  Written as the client sends them: "\\" is one backslash.
AROUND_THE_GATE = [
    "/../outside.txt",
    "/%2e%2e/outside.txt",
    "/..%2foutside.txt",
    "/%252e%252e/outside.txt",
    "/downloads/..%2f..%2foutside.txt",
    "/downloads/..%5c..%5coutside.txt",
    "/report.html%00",
    "/.hidden/secret.txt",
    "/%2ehidden/secret.txt",
    "/.htaccess",
    "//etc/passwd",
    "/\\..\\outside.txt",
    "/_protected/../../outside.txt",
]

# Other spellings of the report, and ways through the gate's own pages, that
# a visitor without a session tries.
REPORT_SPELLINGS = [
    "/report.html",
    "/%72eport.html",
    "/./report.html",
    "/x/../report.html",
    "//report.html",
    "/report.html/",
    "/report.html;x=1",
    "/REPORT.HTML",
    "/_gate/../report.html",
    "/_gate/%2e%2e/report.html",
    "/_gate%2f..%2freport.html",
    "/_gate/login/../../report.html",
    "/_protected/report.html",
]

MAX_REDIRECTS = 3


# -- the deployment --------------------------------------------------------


def write_deployment(folder: Path) -> Path:
    """Write a served folder, gate.toml, gate.secret and users.txt.

    Beside the served folder lies ``outside.txt``, and inside it dot files;
    none of them may ever be served.  Returns the configuration's path.
    """
    root = folder / "site"
    files = {
        "report.html": f"<p>{REPORT_TEXT}, +44 20 7946 0000</p>".encode(),
        "downloads/one-mb.bin": ONE_MB_BYTES,
        ".hidden/secret.txt": DOT_FOLDER_SECRET,
        ".htaccess": DOT_FILE_SECRET,
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    (folder / "outside.txt").write_bytes(OUTSIDE_SECRET)
    key_file = folder / "gate.secret"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    write_users(folder / "users.txt")
    config = folder / "gate.toml"
    tables = {
        "static": {"root": str(root)},
        "auth": {"users_file": "users.txt"},
        "session": {"secret_file": "gate.secret"},
    }
    config.write_text(render_toml(tables), encoding="utf-8")
    return config


def gunicorn_with_example(config: Path, folder: Path) -> Server:
    """A gunicorn with the example's settings file, not yet started.

    Only the address and the worker count are given on the command line,
    where they win over the file: the example's two workers per core would
    be dozens of processes on a large CI machine.
    """
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", str(EXAMPLE)]
    command += ["-b", f"{LOOPBACK}:{port}", "-w", "2"]
    # A home and runtime folder of its own: whatever gunicorn creates there
    # (a control socket) is this server's alone, and the test can look.
    home, runtime = folder / "home", folder / "runtime"
    home.mkdir(exist_ok=True)
    runtime.mkdir(exist_ok=True)
    env = {
        **gate_environment(config),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    return Server("gunicorn", command, port, folder, env=env, ready=answers_http)


def static_gate_serve(config: Path, folder: Path) -> Server:
    """``static-gate serve`` on a free port, not yet started."""
    port = free_port()
    command = [sys.executable, "-m", "static_gate", "serve", "--config", str(config)]
    command += ["--host", LOOPBACK, "--port", str(port), "--threads", "4"]
    return Server(
        "static-gate-serve",
        command,
        port,
        folder,
        env={"STATIC_GATE_CONFIG": None, "STATIC_GATE_SECRET_KEY": None},
        ready=answers_http,
    )


def require_gunicorn() -> None:
    require("gunicorn", has_module("gunicorn"), "pip install -e '.[test]'")


def require_waitress() -> None:
    require("waitress", has_module("waitress"), "pip install -e .")


def running(build: Callable[[Path, Path], Server], folder: Path) -> Iterator[Server]:
    """Start a server over a new deployment in *folder*; stop it afterwards."""
    with build(write_deployment(folder), folder) as server:
        yield server


@pytest.fixture(scope="module")
def gunicorn_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_gunicorn()
    yield from running(gunicorn_with_example, tmp_path_factory.mktemp("gunicorn"))


@pytest.fixture(scope="module")
def waitress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_waitress()
    yield from running(waitress_server, tmp_path_factory.mktemp("waitress"))


@pytest.fixture(scope="module")
def cli_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_waitress()
    yield from running(static_gate_serve, tmp_path_factory.mktemp("serve"))


@pytest.fixture(params=["gunicorn_example", "waitress", "cli_serve"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each of the three servers in turn, started once for the module."""
    started: Server = request.getfixturevalue(request.param)
    return started


@pytest.fixture
def cookie(server: Server) -> str:
    """A new session of alice's on *server*."""
    return sign_in(server.url, "alice", PASSWORDS["alice"])


# -- raw HTTP --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A response as it came over the wire, and as ``http.client`` reads it."""

    status: int
    headers: Message
    #: The body, with any chunked framing removed.
    body: bytes
    #: Every byte the server sent after the blank line that ends the headers.
    sent_after_head: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class _Recorded:
    """Enough of a socket for ``http.client`` to parse recorded bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def request_bytes(
    server: Server,
    target: str,
    *,
    cookie: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Return a GET of *target*, exactly as given, with a session *cookie*."""
    fields = {"Host": f"{LOOPBACK}:{server.port}", "Connection": "close"}
    if cookie is not None:
        fields["Cookie"] = f"{SESSION_COOKIE}={cookie}"

    fields.update(headers or {})
    head = f"GET {target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (head + "\r\n").encode("latin-1")


def get(
    server: Server,
    target: str,
    *,
    cookie: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Send one GET on a new connection and read until the server closes."""
    raw = request_bytes(server, target, cookie=cookie, headers=headers)
    with socket.create_connection((LOOPBACK, server.port), HTTP_SECONDS) as sock:
        sock.sendall(raw)
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk

    return parse(bytes(received))


def parse(data: bytes) -> Answer:
    recorded: socket.socket = _Recorded(data)  # type: ignore[assignment]
    response = http.client.HTTPResponse(recorded, method="GET")
    response.begin()
    try:
        body = response.read()
    except http.client.IncompleteRead as error:
        # A body cut short: keep what came, and let the test say what is wrong.
        body = error.partial

    _, _, after_head = data.partition(b"\r\n\r\n")
    return Answer(response.status, response.headers, body, after_head)


def follow(server: Server, target: str, *, cookie: str | None = None) -> list[Answer]:
    """GET *target*, following redirects on this server up to the login page."""
    answers = [get(server, target, cookie=cookie)]
    while is_redirect(answers[-1]) and len(answers) <= MAX_REDIRECTS:
        location = urlsplit(answers[-1].header("Location") or "")
        assert location.netloc in ("", f"{LOOPBACK}:{server.port}"), location
        if location.path == LOGIN:
            break

        query = f"?{location.query}" if location.query else ""
        answers.append(get(server, location.path + query, cookie=cookie))

    return answers


def is_redirect(answer: Answer) -> bool:
    return 300 <= answer.status < 400


def is_login_redirect(answer: Answer, next_path: str | None = REPORT) -> bool:
    """Tell whether *answer* sends to the login page, to come back to *next_path*.

    With *next_path* ``None``, any way back will do.
    """
    location = urlsplit(answer.header("Location") or "")
    back = parse_qs(location.query).get("next")
    return (
        answer.status == 303
        and location.path == LOGIN
        and (next_path is None or back == [next_path])
    )


def log_lines(server: Server) -> list[str]:
    return server.log.read_text(errors="replace").splitlines()


def has_log_line(server: Server, pattern: re.Pattern[str]) -> bool:
    return any(pattern.search(line) for line in log_lines(server))


def wait_for_log_line(server: Server, pattern: re.Pattern[str]) -> bool:
    """Wait a little for a line the server writes after the response went out."""
    try:
        wait_until(lambda: has_log_line(server, pattern), 5.0, pattern.pattern)
    except TimeoutError:
        return False

    return True


# -- every server: the gate's contract over a real socket ------------------


def test_anonymous_visitor_is_sent_to_the_login_page(server: Server) -> None:
    answer = get(server, REPORT)

    assert is_login_redirect(answer), answer
    assert REPORT_TEXT.encode() not in answer.sent_after_head


def test_signed_in_user_reads_the_report_with_protective_headers(
    server: Server,
) -> None:
    visitor = HttpClient(server.url)
    signed_in = visitor.sign_in("alice", PASSWORDS["alice"], next_path=REPORT)
    answer = get(server, REPORT, cookie=visitor.cookies.get(SESSION_COOKIE))

    assert signed_in.status == 303
    assert urlsplit(signed_in.header("Location") or "").path == REPORT
    assert answer.status == 200
    assert REPORT_TEXT.encode() in answer.body
    assert answer.header("Cache-Control") == "private, no-store"
    vary = {part.strip().lower() for part in (answer.header("Vary") or "").split(",")}
    assert "cookie" in vary
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert answer.header("Referrer-Policy") == "no-referrer"
    assert answer.header("X-Frame-Options") == "DENY"


@pytest.mark.parametrize(
    ("condition", "validator"),
    [("If-None-Match", "ETag"), ("If-Modified-Since", "Last-Modified")],
)
def test_conditional_request_answers_304_without_a_body(
    server: Server, cookie: str, condition: str, validator: str
) -> None:
    first = get(server, REPORT, cookie=cookie)
    value = first.header(validator)
    assert first.status == 200
    assert value, f"no {validator} on the report"

    again = get(server, REPORT, cookie=cookie, headers={condition: value})

    assert again.status == 304
    assert again.sent_after_head == b""
    assert again.header("Cache-Control") == "private, no-store"


def test_range_request_answers_206_with_exactly_those_bytes(
    server: Server, cookie: str
) -> None:
    answer = get(server, ONE_MB, cookie=cookie, headers={"Range": "bytes=0-9"})

    assert answer.status == 206
    assert answer.header("Content-Range") == f"bytes 0-9/{len(ONE_MB_BYTES)}"
    assert answer.body == ONE_MB_BYTES[:10]
    assert answer.sent_after_head == ONE_MB_BYTES[:10]


def test_one_megabyte_file_downloads_intact(server: Server, cookie: str) -> None:
    answer = get(server, ONE_MB, cookie=cookie)

    assert answer.status == 200
    assert answer.header("Content-Length") == str(len(ONE_MB_BYTES))
    assert answer.body == ONE_MB_BYTES


def test_cookie_saved_before_logout_no_longer_opens_the_report(
    server: Server,
) -> None:
    visitor = HttpClient(server.url)
    visitor.sign_in("alice", PASSWORDS["alice"])
    saved = visitor.cookies[SESSION_COOKIE]
    before = get(server, REPORT, cookie=saved)

    signed_out = visitor.sign_out()
    after = get(server, REPORT, cookie=saved)

    assert before.status == 200
    assert signed_out.status == 303
    assert SESSION_COOKIE not in visitor.cookies
    assert is_login_redirect(after), after
    assert REPORT_TEXT.encode() not in after.sent_after_head


@pytest.mark.parametrize("target", AROUND_THE_GATE)
def test_nothing_outside_the_root_or_in_dot_files_is_served(
    server: Server, cookie: str, target: str
) -> None:
    """Even with a session, a hostile path gives a 4xx, or a redirect to one."""
    answers = follow(server, target, cookie=cookie)

    assert 400 <= answers[-1].status < 500, [
        (answer.status, answer.header("Location")) for answer in answers
    ]
    for answer in answers:
        for secret in SECRETS:
            assert secret not in answer.sent_after_head


@pytest.mark.parametrize("target", REPORT_SPELLINGS)
def test_no_spelling_of_the_report_opens_it_without_a_session(
    server: Server, target: str
) -> None:
    answers = follow(server, target)
    last = answers[-1]

    assert is_login_redirect(last, None) or 400 <= last.status < 500, [
        (answer.status, answer.header("Location")) for answer in answers
    ]
    for answer in answers:
        assert REPORT_TEXT.encode() not in answer.sent_after_head


# -- each server's own log -------------------------------------------------


def test_gunicorn_access_log_names_the_signed_in_user(
    gunicorn_example: Server,
) -> None:
    """The example's access_log_format shows REMOTE_USER, set by the gate."""
    server = gunicorn_example
    cookie = sign_in(server.url, "carol", PASSWORDS["carol"])
    get(server, f"{REPORT}?probe=signed-in", cookie=cookie)
    get(server, f"{REPORT}?probe=anonymous")

    signed_in = re.compile(
        r'^127\.0\.0\.1 carol "GET /report\.html\?probe=signed-in HTTP/1\.1" 200 \d+ '
    )
    anonymous = re.compile(
        r'^127\.0\.0\.1 - "GET /report\.html\?probe=anonymous HTTP/1\.1" 303 '
    )
    assert wait_for_log_line(server, signed_in), server.log_tail()
    assert wait_for_log_line(server, anonymous), server.log_tail()


def test_gunicorn_example_logs_the_gates_audit_lines(
    gunicorn_example: Server,
) -> None:
    """gunicorn configures only its own loggers; the example adds the gate's."""
    server = gunicorn_example
    visitor = HttpClient(server.url)
    visitor.sign_in("bob", PASSWORDS["bob"])
    visitor.sign_out()

    for event in ("login", "logout"):
        line = re.compile(
            rf"\[INFO\] static_gate\.audit {event} user='bob' client=127\.0\.0\.1$"
        )
        assert wait_for_log_line(server, line), server.log_tail()


def test_gunicorn_example_opens_no_shared_control_socket(
    gunicorn_example: Server,
) -> None:
    """gunicorn 25.1+ would put gunicorn.ctl in $XDG_RUNTIME_DIR or ~/.gunicorn."""
    server = gunicorn_example
    folder = server.log.parent
    created = [
        path.relative_to(folder)
        for place in ("home", "runtime")
        for path in (folder / place).rglob("*")
    ]

    # The settings file was read: the worker class is the example's.
    assert has_log_line(server, re.compile(r"Using worker: gthread$"))
    assert created == []
    assert not has_log_line(server, re.compile("[Cc]ontrol socket"))


def test_serve_prints_its_address(cli_serve: Server) -> None:
    assert f"static-gate: serving on {cli_serve.url}/" in log_lines(cli_serve)


def test_serve_access_log_names_the_signed_in_user(cli_serve: Server) -> None:
    server = cli_serve
    cookie = sign_in(server.url, "carol", PASSWORDS["carol"])
    get(server, REPORT, cookie=cookie)

    line = re.compile(
        r" static_gate\.access 127\.0\.0\.1 carol \"GET '/report\.html'\" 200 \d+$"
    )
    assert wait_for_log_line(server, line), server.log_tail()


# -- gunicorn: graceful reload ---------------------------------------------

BOOTING = re.compile(r"Booting worker with pid: (\d+)")


def booted_workers(server: Server) -> set[int]:
    """Return the PIDs of every worker the gunicorn master has started."""
    return {
        int(match.group(1))
        for line in log_lines(server)
        if (match := BOOTING.search(line))
    }


def is_alive(pid: int) -> bool:
    """Tell whether process *pid* exists and has not exited (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False

    # The state letter follows the command name, which ends with ")".
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def big_file_size() -> int:
    """Return a size the kernel cannot hold in one socket's send buffer.

    20 MiB, or more where the machine lets a send buffer grow larger, so a
    worker still has most of the file to send when the client stops reading.
    """
    try:
        largest = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        largest = 0

    return max(20 << 20, 4 * largest)


def write_sparse(path: Path, size: int) -> str:
    """Write a file of *size* bytes, mostly a hole; return its SHA-256."""
    head, tail = b"first-bytes-" * 100, b"-last-bytes" * 100
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.write(head)
        file.seek(size - len(tail))
        file.write(tail)

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def test_gunicorn_reload_lets_a_download_in_flight_finish(tmp_path: Path) -> None:
    """SIGHUP to the master: new workers serve while the old one finishes."""
    require_gunicorn()
    require("/proc", Path("/proc/self/stat").exists(), "run on Linux")
    config = write_deployment(tmp_path)
    size = big_file_size()
    expected = write_sparse(tmp_path / "site" / BIG_FILE.lstrip("/"), size)

    with gunicorn_with_example(config, tmp_path) as server:
        assert server.pid is not None
        cookie = sign_in(server.url, "alice", PASSWORDS["alice"])
        wait_until(lambda: len(booted_workers(server)) >= 2, START_SECONDS, "2 workers")
        old_workers = booted_workers(server)

        with socket.socket() as download:
            # A small receive window, and a file larger than any send buffer,
            # keep most of the file in the worker, still to be sent.
            download.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            download.settimeout(HTTP_SECONDS)
            download.connect((LOOPBACK, server.port))
            download.sendall(request_bytes(server, BIG_FILE, cookie=cookie))
            received = bytearray(download.recv(1 << 16))

            os.kill(server.pid, signal.SIGHUP)
            wait_until(
                lambda: len(booted_workers(server) - old_workers) >= 2,
                START_SECONDS,
                "new workers after SIGHUP",
            )
            # The idle old worker leaves at once; the one sending stays.
            wait_until(
                lambda: sum(map(is_alive, old_workers)) <= 1,
                START_SECONDS,
                "idle old workers gone",
            )
            during = get(server, REPORT, cookie=cookie)
            old_still_sending = [pid for pid in old_workers if is_alive(pid)]

            while chunk := download.recv(1 << 20):
                received += chunk

        after = get(server, REPORT, cookie=cookie)
        new_session = sign_in(server.url, "bob", PASSWORDS["bob"])
        wait_until(
            lambda: not any(map(is_alive, old_workers)),
            START_SECONDS,
            "the last old worker gone",
        )

    downloaded = parse(bytes(received))
    assert downloaded.status == 200
    assert downloaded.header("Content-Length") == str(size)
    assert during.status == 200
    assert len(old_still_sending) == 1, "the download did not span the reload"
    assert len(downloaded.sent_after_head) == size
    assert hashlib.sha256(downloaded.body).hexdigest() == expected
    assert after.status == 200
    assert REPORT_TEXT.encode() in after.body
    assert new_session
