"""The example configs under ``nginx/``, run for real in front of gunicorn.

Each example is made runnable by mechanical substitution only: its ports,
host name, certificate, served folder and log paths become the test's, and
the ``gate.toml`` lines its opening comment asks for become the gate's
configuration.  A minimal top-level ``nginx.conf`` in a private prefix
includes the result.  nginx runs as in production (workers as www-data when
started by root), so the served folder and the prefix live in a folder of
their own under ``/tmp`` that www-data can read, removed afterwards.

Each example serves one module-scoped deployment; every test runs against
all three unless it names the ones it is about.
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher

from conftest import GROUPS, KEY, PASSWORDS, render_toml
from servers import (
    LOOPBACK,
    HttpClient,
    Reply,
    Server,
    free_port,
    gunicorn_server,
    has_module,
    has_program,
    require,
    wait_until,
)
from static_gate._compat import tomllib
from static_gate.credentials import Account, format_users

EXAMPLES = Path(__file__).resolve().parent.parent / "nginx"
X_ACCEL = "x-accel-redirect"
AUTH = "auth-request"
CACHED = "auth-request-cached"
VARIANTS = [X_ACCEL, AUTH, CACHED]

#: The session cookie's name over https, at the root of the site.
COOKIE = "__Host-static_gate"
LOGIN = "/_gate/login"
REPORT = "/report.html"
REPORT_BODY = "<p>Grades: alice@example.org, +44 20 7946 0000</p>\n"

SITE = {
    "index.html": "<h1>Reports</h1>\n",
    "report.html": REPORT_BODY,
    "public/index.html": "<p>public page</p>\n",
    "staff/grades.html": "<p>staff grades: bob@example.org</p>\n",
    ".htaccess": "dot file: deny from all\n",
    ".hidden/secret.txt": "dot folder: the key\n",
}
#: A link in the public folder to a protected file: never followed.
LINK = ("public/link.html", "../report.html")
#: Text of the protected files, which no way around the gate may show.
PRIVATE_TEXTS = ["alice@example.org", "bob@example.org", "dot file", "dot folder"]

RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
]
#: Short, so that a renewed session cookie comes within seconds.
IDLE_TIMEOUT = 20
REFRESH_SECONDS = 2

#: ``proxy_cache_valid`` in the cached example, and the longest a cached
#: answer lives: nginx counts expiry in whole seconds.
CACHE_SECONDS = 5
CACHE_LIFETIME = CACHE_SECONDS + 1.0

PROTECTIVE = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000",
}


# -- building a deployment -----------------------------------------------------


@dataclass
class Deployment:
    """One example config, running: nginx in front of gunicorn."""

    variant: str
    site: Path
    gate: Server
    nginx: Server
    http_port: int
    https_port: int
    tls: ssl.SSLContext
    access_log: Path
    _reader: tuple[str, float] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.https_port}"

    def client(self, cookie: str | None = None) -> HttpClient:
        """A new browser, holding only the session *cookie* if one is given."""
        cookies = {COOKIE: cookie} if cookie else None
        return HttpClient(self.url, cookies=cookies, tls=self.tls)

    def sign_in(self, user: str = "alice") -> str:
        """Sign in through nginx and return the session cookie's value."""
        client = self.client()
        reply = client.sign_in(user, PASSWORDS[user])
        assert reply.status == 303, reply.text
        return client.cookies[COOKIE]

    def reader(self) -> str:
        """alice's session for tests that only read, shared between them.

        A new one is signed in well before the idle timeout could end it.
        """
        now = time.monotonic()
        if self._reader is None or now - self._reader[1] > IDLE_TIMEOUT / 2:
            self._reader = (self.sign_in(), now)

        return self._reader[0]


def make_site(folder: Path) -> Path:
    """Write the served folder, readable by nginx's workers."""
    for name, text in SITE.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    (folder / LINK[0]).symlink_to(LINK[1])
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)

    return folder


def make_certificate(folder: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1, and a context that trusts it."""
    folder.mkdir()
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec"]
    command += ["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "2"]
    command += ["-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return cert, key, ssl.create_default_context(cafile=str(cert))


def adapt(example: str, replacements: dict[str, str]) -> str:
    """Substitute the test's values into an example, dropping IPv6 listeners.

    :raises AssertionError: a value to replace is missing from the example,
        which means the example changed and the test must follow.
    """
    lines = [line for line in example.splitlines() if "listen [::]" not in line]
    text = "\n".join(lines) + "\n"
    for old, new in replacements.items():
        assert old in text, f"the example no longer holds {old!r}"
        text = text.replace(old, new)

    return text


def gate_settings(example: str) -> dict[str, Any]:
    """Return the ``gate.toml`` tables that an example's opening comment lists.

    They are the indented comment lines after the one naming ``gate.toml``.
    """
    lines = example.splitlines()
    start = next(i for i, line in enumerate(lines) if "(gate.toml)" in line)
    block: list[str] = []
    for line in lines[start + 1 :]:
        text = line[1:] if line.startswith("#") else None
        if text is None or (text.strip() and not text.startswith("    ")):
            break

        block.append(text.strip())

    settings = tomllib.loads("\n".join(block))
    assert settings, "the example lists no gate.toml lines"
    return settings


def write_users(path: Path) -> None:
    """Write the test's users, hashed with the parameters the gate uses.

    Cheaper ones would be rehashed at the first sign-ins, and a sign-in
    that races a rehash on the other worker gets a session that ends at its
    next request: not what these tests are about.
    """
    hasher = PasswordHasher()
    accounts = {
        name: Account(name, hasher.hash(password), frozenset(GROUPS.get(name, ())))
        for name, password in PASSWORDS.items()
    }
    path.write_text(format_users(accounts), encoding="utf-8")


def write_gate_config(folder: Path, settings: dict[str, Any]) -> Path:
    """Write gate.toml with *settings*, a key file and the test's users."""
    key_file = folder / "gate.secret"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    write_users(folder / "users.txt")
    tables: dict[str, Any] = {
        **settings,
        "auth": {"users_file": "users.txt"},
        "session": {"secret_file": "gate.secret", "idle_timeout": f"{IDLE_TIMEOUT}s"},
        "rules": RULES,
    }
    path = folder / "gate.toml"
    path.write_text(render_toml(tables), encoding="utf-8")
    return path


def top_level_config(server_file: str) -> str:
    """A minimal nginx.conf for a private prefix that includes *server_file*."""
    user = ""
    if os.geteuid() == 0:
        # As in production: the workers, which read the files, drop root.
        user = f"user {worker_user()};\n"

    return (
        f"daemon off;\n{user}worker_processes 1;\n"
        "pid nginx.pid;\nerror_log error.log warn;\n"
        "events {\n    worker_connections 64;\n}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    access_log access.log;\n"
        "    client_body_temp_path temp/body;\n"
        "    proxy_temp_path temp/proxy;\n"
        "    fastcgi_temp_path temp/fastcgi;\n"
        "    uwsgi_temp_path temp/uwsgi;\n"
        "    scgi_temp_path temp/scgi;\n"
        f"    include {server_file};\n"
        "}\n"
    )


def free_ports(count: int, taken: set[int]) -> list[int]:
    """Return *count* free ports, none of them in *taken*.

    Nothing listens on a port that :func:`free_port` returned until its
    server starts, so the next call may return the same one.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)

    return ports


def worker_user() -> str:
    for name in ("www-data", "nginx", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue

    return "nobody"


def nginx_program() -> str | None:
    """Return the nginx binary: on PATH, or where Debian puts it."""
    # /usr/sbin is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def has_auth_request(program: str) -> bool:
    found = subprocess.run(
        [program, "-V"], capture_output=True, text=True, timeout=10, check=False
    )
    return "--with-http_auth_request_module" in found.stderr


def require_servers(variant: str) -> str:
    """Skip (fail under CI) without the servers; return nginx's path."""
    install = "install Debian's nginx and openssl (.ci/run does)"
    program = nginx_program()
    require("nginx", program is not None, install)
    assert program is not None
    require("openssl", has_program("openssl"), install)
    require("gunicorn", has_module("gunicorn"), "pip install -e '.[test]'")
    if variant != X_ACCEL:
        require("nginx's auth_request module", has_auth_request(program), install)

    return program


@pytest.fixture(scope="module", params=VARIANTS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """gunicorn (2 workers) running the gate, behind nginx with one example."""
    variant: str = request.param
    program = require_servers(variant)
    work = tmp_path_factory.mktemp(variant)
    with ExitStack() as stack:
        # pytest's own folders are closed to www-data.
        shared = Path(tempfile.mkdtemp(prefix="static-gate-nginx-", dir="/tmp"))
        stack.callback(shutil.rmtree, shared, True)
        shared.chmod(0o755)
        site = make_site(shared / "site")
        cert, key, tls = make_certificate(shared / "tls")
        prefix = shared / "nginx"
        for folder in (prefix, prefix / "temp", prefix / "cache"):
            folder.mkdir(mode=0o755)

        example = (EXAMPLES / f"{variant}.conf").read_text(encoding="utf-8")
        gate = gunicorn_server(
            # Written below, once the example has named the settings.
            work / "gate.toml",
            work / "logs",
            workers=2,
        )
        http_port, https_port = free_ports(2, taken={gate.port})
        replacements = {
            "/etc/letsencrypt/live/example.org/fullchain.pem": str(cert),
            "/etc/letsencrypt/live/example.org/privkey.pem": str(key),
            "example.org": LOOPBACK,
            "listen 80;": f"listen {LOOPBACK}:{http_port};",
            "listen 443 ssl;": f"listen {LOOPBACK}:{https_port} ssl;",
            "https://$host$request_uri": f"https://$host:{https_port}$request_uri",
            "server 127.0.0.1:8000;": f"server {LOOPBACK}:{gate.port};",
            "/srv/reports/site": str(site),
        }
        if "/var/log/nginx/" in example:
            replacements["/var/log/nginx/"] = f"{prefix}/"
        if "/var/cache/nginx/" in example:
            replacements["/var/cache/nginx/"] = f"{prefix}/cache/"

        text = adapt(example, replacements)
        write_gate_config(work, gate_settings(text))
        (prefix / "server.conf").write_text(text, encoding="utf-8")
        (prefix / "nginx.conf").write_text(top_level_config("server.conf"))
        nginx = Server(
            "nginx",
            [program, "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "error.log"],
            https_port,
            work / "logs",
            extra_logs=[prefix / "error.log"],
        )
        stack.enter_context(gate)
        stack.enter_context(nginx)
        yield Deployment(
            variant,
            site,
            gate,
            nginx,
            http_port,
            https_port,
            tls,
            prefix / "static-gate.access.log",
        )


# -- helpers -------------------------------------------------------------------


def login_location(target: str) -> str:
    """The Location of the gate's redirect to its login page, for *target*."""
    return f"{LOGIN}?next={quote(target, safe='')}"


def shows_nothing_private(reply: Reply) -> bool:
    return not any(text in reply.text for text in PRIVATE_TEXTS)


def protective_headers(reply: Reply) -> dict[str, list[str]]:
    return {name: reply.headers.get_all(name) or [] for name in PROTECTIVE}


def vary(reply: Reply) -> list[str]:
    lines = reply.headers.get_all("Vary") or []
    return [value.strip() for line in lines for value in line.split(",")]


def assert_protected(reply: Reply) -> None:
    """Each protective header is there exactly once, with the gate's value."""
    assert protective_headers(reply) == {
        name: [value] for name, value in PROTECTIVE.items()
    }
    assert "Cookie" in vary(reply)


# -- https and signing in ------------------------------------------------------


def test_plain_http_is_redirected_to_https(deployment: Deployment) -> None:
    client = HttpClient(f"http://{LOOPBACK}:{deployment.http_port}")

    reply = client.get("/report.html?year=9")

    assert reply.status == 301
    assert reply.header("Location") == f"{deployment.url}/report.html?year=9"
    assert shows_nothing_private(reply)


@pytest.mark.parametrize(
    "uri",
    [REPORT, "/staff/grades.html?term=autumn&class=9b", "/staff/a%20b.html"],
)
def test_anonymous_visitor_is_sent_to_the_login_page(
    deployment: Deployment, uri: str
) -> None:
    """The whole URI comes back after sign-in, query and escapes included."""
    reply = deployment.client().get(uri)

    assert reply.status == 303
    assert reply.header("Location") == login_location(uri)
    assert shows_nothing_private(reply)


def test_sign_in_gives_a_secure_host_cookie(deployment: Deployment) -> None:
    """nginx says https, and the gate believes it: [proxy] trusted matches."""
    client = deployment.client()

    reply = client.sign_in("alice", PASSWORDS["alice"], next_path=REPORT)

    assert reply.status == 303
    assert reply.header("Location") == REPORT
    assert (
        reply.header("Strict-Transport-Security")
        == PROTECTIVE["Strict-Transport-Security"]
    )
    [line] = [line for line in reply.set_cookie_lines() if line.startswith(COOKIE)]
    assert {"Secure", "HttpOnly", "Path=/"} <= {
        part.strip() for part in line.split(";")
    }


def test_signed_in_visitor_reads_a_report_with_every_protective_header(
    deployment: Deployment,
) -> None:
    cookie = deployment.sign_in()

    reply = deployment.client(cookie).get(REPORT)

    assert reply.status == 200
    assert reply.text == REPORT_BODY
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert_protected(reply)
    assert reply.header("X-Accel-Redirect") is None
    assert reply.header("X-Static-Gate-User") is None


@pytest.mark.parametrize(
    ("validator", "condition"),
    [("ETag", "If-None-Match"), ("Last-Modified", "If-Modified-Since")],
)
def test_conditional_request_answers_304(
    deployment: Deployment, validator: str, condition: str
) -> None:
    client = deployment.client(deployment.reader())
    first = client.get(REPORT)
    value = first.header(validator)
    assert value

    reply = client.request("GET", REPORT, headers={condition: value})

    assert reply.status == 304
    assert reply.text == ""
    assert_protected(reply)


def test_range_request_answers_206(deployment: Deployment) -> None:
    client = deployment.client(deployment.reader())

    reply = client.request("GET", REPORT, headers={"Range": "bytes=0-9"})

    assert reply.status == 206
    assert reply.text == REPORT_BODY[:10]
    assert reply.header("Content-Range") == f"bytes 0-9/{len(REPORT_BODY)}"
    assert_protected(reply)


def test_renewed_session_cookie_reaches_the_browser(deployment: Deployment) -> None:
    """Without it, a reading visitor would be signed out after idle_timeout."""
    cookie = deployment.sign_in()
    time.sleep(REFRESH_SECONDS + 0.1)

    # Only a page load counts as activity, as a browser's navigation says.
    navigation = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
    reply = deployment.client(cookie).request("GET", REPORT, headers=navigation)

    renewed = reply.set_cookies().get(COOKIE)
    assert reply.status == 200
    assert renewed and renewed != cookie
    assert deployment.client(renewed).get(REPORT).status == 200


def test_refused_visitor_gets_the_gates_403_page(deployment: Deployment) -> None:
    reply = deployment.client(deployment.sign_in("bob")).get("/staff/grades.html")

    assert reply.status == 403
    assert "Access denied" in reply.text
    assert shows_nothing_private(reply)


def test_answers_are_never_shared_between_visitors(deployment: Deployment) -> None:
    """Right after alice reads a staff page, bob and strangers still may not."""
    alice = deployment.client(deployment.sign_in("alice"))
    bob = deployment.client(deployment.sign_in("bob"))
    page = "/staff/grades.html"

    assert alice.get(page).status == 200
    assert bob.get(page).status == 403
    assert deployment.client().get(page).status == 303
    assert deployment.client("forged").get(page).status == 303


def test_logout_closes_the_report_to_a_saved_cookie(deployment: Deployment) -> None:
    """With the cached example, only once its cached "yes" has expired."""
    cookie = deployment.sign_in()
    assert deployment.client(cookie).get(REPORT).status == 200
    cached_at = time.monotonic()

    assert deployment.client(cookie).sign_out().status == 303

    if deployment.variant == CACHED:
        # The documented delay: nginx still holds the gate's "yes".
        assert deployment.client(cookie).get(REPORT).status == 200
        time.sleep(max(0.0, cached_at + CACHE_LIFETIME + 0.2 - time.monotonic()))

    reply = deployment.client(cookie).get(REPORT)
    assert reply.status == 303
    assert reply.header("Location") == login_location(REPORT)
    assert shows_nothing_private(reply)


# -- around the gate -----------------------------------------------------------

AROUND_THE_GATE = [
    "/_protected/report.html",
    "/_protected%2freport.html",
    "/%5f_protected/report.html",
    "/_protected/../_protected/report.html",
    "/public/..%2f_protected/report.html",
    "/%2e%2e/site/report.html",
    "/site/report.html",
    "/public/../report.html",
    "/public/%2e%2e/report.html",
    "/public/%2E%2E/report.html",
    "/public//../report.html",
    "//report.html",
    "/./report.html",
    "/public/link.html",
    "/public/link.html/",
    "/.htaccess",
    "/%2ehtaccess",
    "/.hidden/secret.txt",
    "/public/../.hidden/secret.txt",
    "/_gate_auth",
    "/_gate/auth",
]


@pytest.mark.parametrize("uri", AROUND_THE_GATE)
def test_anonymous_visitor_never_gets_around_the_gate(
    deployment: Deployment, uri: str
) -> None:
    reply = deployment.client().get(uri)

    assert reply.status not in (200, 204, 206), reply.text
    assert shows_nothing_private(reply)


@pytest.mark.parametrize(
    "uri",
    [
        "/_protected/report.html",
        "/_protected%2freport.html",
        "/%5f_protected/report.html",
        "/public/..%2f_protected/report.html",
        "/site/report.html",
        "/public/link.html",
        "/.htaccess",
        "/.hidden/secret.txt",
    ],
)
def test_signed_in_visitor_reads_nothing_around_the_gate_either(
    deployment: Deployment, uri: str
) -> None:
    client = deployment.client(deployment.reader())
    assert client.get(REPORT).status == 200

    reply = client.get(uri)

    assert reply.status not in (200, 206), reply.text
    assert shows_nothing_private(reply)


@pytest.mark.parametrize(
    "deployment", [X_ACCEL], indirect=True, ids=lambda variant: variant
)
def test_internal_location_is_not_found_from_outside(
    deployment: Deployment,
) -> None:
    client = deployment.client(deployment.reader())

    assert client.get("/_protected/report.html").status == 404
    assert client.get("/_protected/").status == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Original-URI": "/public/index.html"},
        {"X-Accel-Redirect": "/_protected/report.html"},
        {"X-Static-Gate-User": "alice"},
        {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"},
    ],
    ids=lambda headers: next(iter(headers)),
)
def test_forged_request_headers_change_nothing(
    deployment: Deployment, headers: dict[str, str]
) -> None:
    client = deployment.client()

    plain = client.get(REPORT)
    forged = client.request("GET", REPORT, headers=headers)
    auth = client.request("GET", "/_gate/auth", headers=headers)

    assert (forged.status, forged.header("Location")) == (
        plain.status,
        plain.header("Location"),
    )
    assert shows_nothing_private(forged)
    assert auth.status not in (200, 204)


# -- auth_request only ---------------------------------------------------------


@pytest.mark.parametrize(
    "deployment", [AUTH, CACHED], indirect=True, ids=lambda variant: variant
)
def test_access_log_names_the_signed_in_user(deployment: Deployment) -> None:
    client = deployment.client(deployment.sign_in("carol"))
    assert client.get("/index.html?log-marker").status == 200

    def marked() -> list[str]:
        text = deployment.access_log.read_text(encoding="utf-8")
        return [line for line in text.splitlines() if "log-marker" in line]

    # nginx writes the line just after the answer has gone out.
    wait_until(lambda: bool(marked()), 5.0, "the access log line")
    [line] = marked()
    assert line.split()[2] == "carol"
