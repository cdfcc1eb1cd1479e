"""Start real servers for tests, and talk to them over loopback HTTP.

A :class:`Server` runs one command in its own process group, writes its
output to a log file, waits (boundedly) until it serves, and stops exactly
the process it started.  :func:`gunicorn_server`, :func:`waitress_server`
and :func:`redis_server` build the commands this project's tests need; other
servers (Apache, nginx) fit the same class.

:class:`HttpClient` is a small client on raw sockets and ``http.client``'s
response parser: one fresh connection per request, a cookie jar kept as a
dict, no redirects followed, and a timeout on every socket.  It speaks
https too, for servers that terminate TLS themselves (Apache with mod_ssl).

Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode, urlsplit

import pytest

LOOPBACK = "127.0.0.1"

#: Longest wait for a server to serve after it was started, in seconds.
START_SECONDS = 15.0
#: Longest wait for a server to exit after SIGTERM, and again after SIGKILL.
STOP_SECONDS = 10.0
#: Timeout of every socket operation of :class:`HttpClient`, in seconds.
HTTP_SECONDS = 10.0
#: How often waits look again, in seconds.
POLL_SECONDS = 0.05

#: The gate's session cookie over plain http (https adds a ``__Host-`` prefix).
SESSION_COOKIE = "static_gate"

_CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_EXPIRED = re.compile(r";\s*max-age=0\s*(;|$)", re.IGNORECASE)


# -- waiting ---------------------------------------------------------------


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll *check* until it returns true, for at most *seconds*.

    :raises TimeoutError: naming *what* was awaited.
    """
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {seconds:g} s")

        time.sleep(POLL_SECONDS)


def require(what: str, found: bool, install: str) -> None:
    """Skip the test when *what* is missing; fail instead when ``CI`` is set.

    CI installs every server the tests use, so a missing one there is a
    broken setup, never a reason to pass quietly.
    """
    if found:
        return

    message = f"{what} is not installed; {install}"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {message}")

    pytest.skip(message)


def has_program(name: str) -> bool:
    """Tell whether *name* is an executable on ``PATH``."""
    return shutil.which(name) is not None


def has_module(name: str) -> bool:
    """Tell whether the Python module *name* can be imported."""
    return importlib.util.find_spec(name) is not None


# -- ports -----------------------------------------------------------------


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    """Tell whether something accepts TCP connections on *port*."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def answers_http(port: int, path: str = "/") -> bool:
    """Tell whether an HTTP server on *port* answers a GET of *path*.

    Any status counts: the point is that a worker got the request.
    """
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def answers_redis_ping(port: int) -> bool:
    """Tell whether a Redis server on *port* answers ``PING``."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def accept_backlog(port: int) -> int | None:
    """Return how many connections wait to be accepted on a loopback *port*.

    Read from ``/proc/net/tcp``, whose receive-queue column holds a listening
    socket's accept queue.  ``None`` when that file or the socket is missing
    (not Linux, or nothing listens).
    """
    wanted = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None

    for line in lines:
        fields = line.split()
        # 0A is TCP_LISTEN; the fifth field is "tx_queue:rx_queue" in hex.
        if fields[1] == wanted and fields[3] == "0A":
            return int(fields[4].split(":")[1], 16)

    return None


# -- servers ---------------------------------------------------------------


class ServerFailed(RuntimeError):
    """A server exited, or did not serve in time, after it was started."""


class Server:
    """A command serving on a loopback port, started and stopped by its PID.

    The command runs in a new session, so it is the leader of its own
    process group and a terminal's Ctrl-C does not reach it; the test's
    finalizer stops it.  Its stdout and stderr go to ``<log_dir>/<name>.log``.
    A server can be stopped and started again on the same port.

    :param name: names the log file and error messages.
    :param command: the program and its arguments.
    :param port: where it listens once ready.
    :param log_dir: a folder for the log file, created if missing.
    :param env: changes to this process's environment; ``None`` removes a
        variable.
    :param cwd: the working folder; by default *log_dir*.
    :param ready: tells whether the server serves on a port; by default
        whether it accepts connections.
    :param extra_logs: log files the server writes itself, shown with its
        output when it fails.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        log_dir: Path,
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        ready: Callable[[int], bool] = accepts_connections,
        extra_logs: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log = log_dir / f"{name}.log"
        self.cwd = cwd or log_dir
        self.ready = ready
        self.extra_logs = list(extra_logs)
        self.environ = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                self.environ.pop(key, None)
            else:
                self.environ[key] = value

        #: Set by :func:`gunicorn_server` to its access log.
        self.access_log: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Server:
        """Start the command and wait until it serves.

        :raises ServerFailed: it exited, or did not serve within
            :data:`START_SECONDS`; the message holds the end of its log.
        """
        if self.is_running():
            raise ServerFailed(f"{self.name} is already running")

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.environ,
                start_new_session=True,
            )

        deadline = time.monotonic() + START_SECONDS
        while not self.ready(self.port):
            status = self.process.poll()
            if status is not None:
                raise ServerFailed(
                    f"{self.name} exited with status {status} before serving "
                    f"on port {self.port}:\n{self.log_tail()}"
                )

            if time.monotonic() >= deadline:
                self.stop()
                raise ServerFailed(
                    f"{self.name} did not serve on port {self.port} within "
                    f"{START_SECONDS:g} s:\n{self.log_tail()}"
                )

            time.sleep(POLL_SECONDS)

        return self

    def stop(self) -> int | None:
        """Stop the server: SIGTERM, then SIGKILL if it lingers.

        Returns its exit status, or ``None`` if it was never started.
        """
        process = self.process
        if process is None:
            return None

        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                # Not yet reaped, so the PID is still ours; the group is the
                # session this command started, so its workers go too.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_SECONDS)

        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        """Return the last *lines* of the server's output and its own logs."""
        parts = []
        for path in [self.log, *self.extra_logs]:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue

            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {path.name} ---\n{tail}")

        return "\n".join(parts)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def gate_environment(config: Path) -> dict[str, str | None]:
    """The environment for ``static_gate.wsgi``: this config, no key override."""
    return {"STATIC_GATE_CONFIG": str(config), "STATIC_GATE_SECRET_KEY": None}


def gunicorn_server(
    config: Path,
    log_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    worker_class: str = "gthread",
    name: str = "gunicorn",
) -> Server:
    """A gunicorn serving ``static_gate.wsgi`` with *config*, not yet started.

    Every request is written to ``<log_dir>/<name>-access.log`` as
    ``<PID> STATUS METHOD PATH QUERY``, which tells which worker served it.

    :param worker_class: ``"gthread"`` with *threads* threads per worker, or
        ``"sync"``: one request at a time per worker, *threads* unused.
    """
    port = free_port()
    access_log = log_dir / f"{name}-access.log"
    command = [sys.executable, "-m", "gunicorn", "-b", f"{LOOPBACK}:{port}"]
    command += ["-w", str(workers), "-k", worker_class, "--graceful-timeout", "5"]
    command += ["--access-logfile", str(access_log)]
    command += ["--access-logformat", "%(p)s %(s)s %(m)s %(U)s %(q)s"]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]

    if _gunicorn_version() >= (25, 1):
        # Otherwise every gunicorn of the run shares one control socket in
        # $XDG_RUNTIME_DIR or ~/.gunicorn, and each new one takes it over.
        command.append("--no-control-socket")

    command.append("static_gate.wsgi:application")
    server = Server(
        name,
        command,
        port,
        log_dir,
        env=gate_environment(config),
        ready=answers_http,
    )
    server.access_log = access_log
    return server


def waitress_server(
    config: Path, log_dir: Path, *, threads: int = 4, name: str = "waitress"
) -> Server:
    """A waitress serving ``static_gate.wsgi`` with *config*, not yet started."""
    port = free_port()
    command = [sys.executable, "-m", "waitress", f"--listen={LOOPBACK}:{port}"]
    command += [f"--threads={threads}", "static_gate.wsgi:application"]
    return Server(
        name, command, port, log_dir, env=gate_environment(config), ready=answers_http
    )


def redis_server(folder: Path, port: int | None = None) -> Server:
    """A throwaway ``redis-server`` on loopback, not yet started.

    It keeps nothing on disk (``--save ''``, no append-only file), so a
    restart starts empty.  Its own log is ``<folder>/redis.log``.
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # --dir changes folder before the log file opens: both paths absolute.
    command = ["redis-server", "--bind", LOOPBACK, "--port", str(port)]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    command += ["--protected-mode", "yes", "--dir", str(folder)]
    command += ["--logfile", str(folder / "redis.log")]
    return Server(
        "redis-server",
        command,
        port,
        folder,
        ready=answers_redis_ping,
        extra_logs=[folder / "redis.log"],
    )


def _gunicorn_version() -> tuple[int, ...]:
    version = importlib.metadata.version("gunicorn")
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


# -- HTTP ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response, read in full."""

    status: int
    headers: Message
    text: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def set_cookies(self) -> dict[str, str]:
        """Return the cookies this response sets, by name (``""`` deletes)."""
        return dict(_parse_set_cookie(line) for line in self.set_cookie_lines())

    def set_cookie_lines(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


class HttpClient:
    """A browser-like HTTP/1.1 client for one server, without redirects.

    Each request uses a new connection (``Connection: close``), so requests
    to a server with several worker processes are spread the way separate
    visitors are.  Cookies are kept by name only, without path or expiry.

    :param base_url: ``http://127.0.0.1:PORT`` or ``https://HOST:PORT``.
    :param cookies: the jar to start with; it is updated by every response.
    :param tls: for https, the context that checks the server's
        certificate (a test's self-signed one); by default the system's.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cookies: Mapping[str, str] | None = None,
        timeout: float = HTTP_SECONDS,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if (
            parts.scheme not in ("http", "https")
            or parts.hostname is None
            or parts.port is None
        ):
            raise ValueError(f"expected http(s)://HOST:PORT, got {base_url!r}")

        self.host = parts.hostname
        self.port = parts.port
        self.cookies = dict(cookies or {})
        self.timeout = timeout
        #: How connections are wrapped in TLS; ``None`` for plain http.
        self.tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.tls = tls or ssl.create_default_context()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: Mapping[str, str]) -> Reply:
        return self.request("POST", path, form=form)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request on a new connection and read the whole answer."""
        return self.hold(method, path, form=form, headers=headers).release()

    def hold(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HeldRequest:
        """Send a request all but its last byte, and keep the server waiting.

        A server process that reads a request one at a time (a gunicorn sync
        worker) stays busy with it until :meth:`HeldRequest.release`.
        """
        raw = self.encode(method, path, form=form, headers=headers)
        return HeldRequest(self, method, raw)

    def encode(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Return the bytes of a request, with this client's cookies."""
        body = urlencode(form).encode() if form is not None else b""
        fields = {"Host": f"{self.host}:{self.port}", "Connection": "close"}
        if self.cookies:
            fields["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())

        if form is not None:
            fields["Content-Type"] = "application/x-www-form-urlencoded"
            fields["Content-Length"] = str(len(body))

        fields.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        return (head + "\r\n").encode("latin-1") + body

    def remember(self, reply: Reply) -> None:
        """Keep the cookies *reply* sets; forget those it deletes."""
        for line in reply.set_cookie_lines():
            name, value = _parse_set_cookie(line)
            if value and not _EXPIRED.search(line):
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)

    def sign_in(
        self, user: str, password: str, *, prefix: str = "/_gate/", next_path: str = "/"
    ) -> Reply:
        """Sign in through the real form; return the answer to the POST."""
        page = self.get(f"{prefix}login")
        form = {
            "csrf_token": form_token(page),
            "next": next_path,
            "user": user,
            "password": password,
        }
        return self.post(f"{prefix}login", form)

    def sign_out(self, *, prefix: str = "/_gate/") -> Reply:
        """Sign out through the real form; return the answer to the POST."""
        page = self.get(f"{prefix}logout")
        return self.post(f"{prefix}logout", {"csrf_token": form_token(page)})


class HeldRequest:
    """A request whose last byte is not sent yet; see :meth:`HttpClient.hold`."""

    def __init__(self, client: HttpClient, method: str, raw: bytes) -> None:
        self.client = client
        self.method = method
        self._sock = socket.create_connection(
            (client.host, client.port), timeout=client.timeout
        )
        try:
            if client.tls is not None:
                # Checks the certificate against the host name or IP address.
                self._sock = client.tls.wrap_socket(
                    self._sock, server_hostname=client.host
                )

            self._sock.sendall(raw[:-1])
        except OSError:
            self._sock.close()
            raise

        self._rest = raw[-1:]

    def close(self) -> None:
        """Drop the connection without finishing the request."""
        self._sock.close()

    def release(self) -> Reply:
        """Send the last byte and read the whole answer."""
        try:
            self._sock.sendall(self._rest)
            response = http.client.HTTPResponse(self._sock, method=self.method)
            try:
                response.begin()
                body = response.read()
            finally:
                response.close()
        finally:
            self._sock.close()

        charset = response.headers.get_content_charset() or "utf-8"
        reply = Reply(
            response.status, response.headers, body.decode(charset, "replace")
        )
        self.client.remember(reply)
        return reply


class SignInFailed(Exception):
    """Signing in did not give a session cookie."""


def form_token(reply: Reply) -> str:
    """Return the CSRF token of the form on a page.

    :raises ValueError: the page has no form token.
    """
    match = _CSRF_TOKEN.search(reply.text)
    if match is None:
        raise ValueError(f"no form token on a {reply.status} page:\n{reply.text}")

    return match.group(1)


def sign_in(
    base_url: str,
    user: str,
    password: str,
    *,
    prefix: str = "/_gate/",
    cookie: str = SESSION_COOKIE,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Sign in as a new visitor would and return the session cookie's value.

    :param tls: for an https *base_url*, as for :class:`HttpClient`.
    :raises SignInFailed: the answer was not a redirect with the cookie.
    """
    client = HttpClient(base_url, tls=tls)
    reply = client.sign_in(user, password, prefix=prefix)
    value = client.cookies.get(cookie)
    if reply.status != 303 or not value:
        raise SignInFailed(
            f"signing in as {user!r} at {base_url} answered {reply.status} "
            f"without a {cookie} cookie:\n{reply.text[:500]}"
        )

    return value


def _parse_set_cookie(line: str) -> tuple[str, str]:
    pair = line.split(";", 1)[0]
    name, _, value = pair.partition("=")
    return name.strip(), value.strip().strip('"')
