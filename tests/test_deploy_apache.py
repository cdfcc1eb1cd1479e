"""Apache with mod_wsgi in daemon mode, run from the files under ``apache/``.

Each server is the system's ``apache2`` in the foreground, on free loopback
ports, from a generated top-level configuration that loads the modules and
then includes one of the repository's example files after a mechanical
replacement of its placeholders (see :func:`placeholders`).  So the test runs
the file that administrators copy, not a copy of it.  The folder that stands
in for ``/srv/reports`` is laid out as on a server: readable by www-data,
the key file ``root:www-data 0640``, ``state/`` owned by www-data.

The top-level configuration also points the server's ``DocumentRoot`` at
that folder: the virtual host must keep the reports out of reach by itself.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import ssl
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher

import static_gate
from conftest import KEY, PASSWORDS, render_toml
from servers import (
    LOOPBACK,
    SESSION_COOKIE,
    START_SECONDS,
    HttpClient,
    Reply,
    Server,
    answers_http,
    free_port,
    has_module,
    require,
    sign_in,
    wait_until,
)
from static_gate.credentials import Account, format_users

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "apache"
MODULES = Path("/usr/lib/apache2/modules")
MOD_XSENDFILE = MODULES / "mod_xsendfile.so"
EXPRESS = Path(sys.prefix) / "bin" / "mod_wsgi-express"
APACHE2 = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin")

#: Apache's User and Group when the tests run as root, as on Debian.
RUN_USER = "www-data"
IS_ROOT = os.geteuid() == 0

#: Over https the session cookie carries the ``__Host-`` prefix.
COOKIE = "__Host-static_gate"
LOGIN = "/_gate/login"
REPORT = "/report.html"
REPORT_TEXT = "alice@example.org, +44 20 7946 0000"
#: Report names beyond ASCII: within Latin-1, and beyond it.
NON_ASCII_NAMES = ("Übersicht.html", "Łódź.html")
PROTECTIVE = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=31536000"

BASE_MODULES = (
    "mpm_event",
    "authz_core",
    "mime",
    "alias",
    "headers",
    "socache_shmcb",
    "ssl",
)


# -- the folder that stands in for /srv/reports ----------------------------


@dataclass(frozen=True)
class Site:
    """One site of an example file, and where the test puts it."""

    #: The host name in the example file, such as ``example.org``.
    name: str
    #: The site's folder in the example file, such as ``/srv/reports``.
    srv: str
    #: The host name the test uses instead of :attr:`name`.
    host: str
    #: The folder the test uses instead of :attr:`srv`.
    folder: Path
    #: A sentence that only this site's report holds.
    text: str = REPORT_TEXT


def report_html(text: str) -> str:
    return f"<!doctype html>\n<title>Report</title>\n<p>{text}</p>\n"


def lay_out(site: Site, *, offload: str = "none", root: str = "site") -> None:
    """Write what a server's ``/srv/reports`` holds, owned as the docs say.

    :param root: the gate's ``[static] root``; the reports are always in
        ``site/``, so another value serves a folder beside it.
    """
    folder = site.folder
    for sub in ("site", "app", "state", root):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    for name in ("report.html", *NON_ASCII_NAMES):
        for sub in {"site", root}:
            (folder / sub / name).write_text(report_html(site.text), "utf-8")

    # The one edit the entry file needs: where this site's gate.toml is.
    entry = (EXAMPLES / "static-gate.wsgi").read_text(encoding="utf-8")
    entry = replace_all(entry, [("/srv/reports", str(folder))], "static-gate.wsgi")
    (folder / "app" / "static-gate.wsgi").write_text(entry, encoding="utf-8")

    static = {"root": root} if offload == "none" else {"root": root, "offload": offload}
    config = {
        "static": static,
        "auth": {"users_file": "users.txt"},
        "session": {"secret_file": "gate.secret"},
        "proxy": {"user_header": True},
    }
    (folder / "gate.toml").write_text(render_toml(config), encoding="utf-8")
    (folder / "gate.secret").write_text(KEY + "\n", encoding="utf-8")
    # argon2's default parameters, as production hashes have: with cheaper
    # ones every sign-in would try to rewrite users.txt with a stronger hash.
    hasher = PasswordHasher()
    accounts = {
        name: Account(name, hasher.hash(PASSWORDS[name]), frozenset())
        for name in ("alice", "bob")
    }
    (folder / "users.txt").write_text(format_users(accounts), encoding="utf-8")
    hand_to_apache(folder)


def hand_to_apache(folder: Path) -> None:
    """Give www-data what it needs: read everything, write ``state/`` only."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o750 if path.is_dir() else 0o640)
        if IS_ROOT:
            os.chown(path, 0, pwd.getpwnam(RUN_USER).pw_gid)

    if IS_ROOT:
        entry = pwd.getpwnam(RUN_USER)
        os.chown(folder / "state", entry.pw_uid, entry.pw_gid)
        (folder / "state").chmod(0o700)


def blocked_folder(path: Path, user: str) -> Path | None:
    """Return the first folder on the way to *path* that *user* cannot enter.

    Only the permission bits are read (no ACLs), as the kernel would for a
    user without them.
    """
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    folders = [*reversed(path.parents), path] if path.is_dir() else path.parents
    for folder in sorted(set(folders), key=lambda p: len(p.parts)):
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH

        if not info.st_mode & bit:
            return folder

    return None


def require_reachable(*paths: Path) -> None:
    """Fail unless www-data can reach this Python, the source and *paths*.

    mod_wsgi's daemon processes run as www-data.  When a folder on the way
    to Python is closed to it (pyenv under /root, mode 700), each request
    hangs for a minute and ends in 504, so the test stops here with the fix.
    """
    if not IS_ROOT:
        return

    python = sysconfig.get_paths()
    needed = [python["stdlib"], python["purelib"], sys.prefix, static_gate.__file__]
    for path in [*map(Path, needed), *paths]:
        folder = blocked_folder(path, RUN_USER)
        if folder is not None:
            pytest.fail(
                f"{RUN_USER} cannot enter {folder}, on the way to {path}, so "
                "mod_wsgi's daemon processes cannot run the gate; run "
                f"'chmod o+x {folder}' (traverse only, as .ci/run does for /root "
                "and the checkout's parent folders), or use a virtual "
                "environment made from /usr/bin/python3."
            )


# -- example files and the top-level configuration -------------------------


def replace_all(text: str, pairs: Sequence[tuple[str, str]], source: str) -> str:
    """Replace each placeholder in turn; each must still be in *source*."""
    for placeholder, value in pairs:
        if placeholder not in text:
            raise AssertionError(
                f"{source} no longer contains {placeholder!r}; "
                "update the placeholders in this test"
            )

        text = text.replace(placeholder, value)

    return text


def placeholders(
    sites: Sequence[Site], http_port: int, https_port: int, tls: Path, logs: Path
) -> list[tuple[str, str]]:
    """The documented placeholders of ``apache/*.conf``, and the test's values.

    Order matters: the certificate paths and the https URLs hold the host
    name, and the virtual environment is inside the site's folder.
    """
    pairs = [
        ("<VirtualHost *:80>", f"<VirtualHost {LOOPBACK}:{http_port}>"),
        ("<VirtualHost *:443>", f"<VirtualHost {LOOPBACK}:{https_port}>"),
    ]
    for site in sites:
        pairs += [
            (f"/etc/ssl/certs/{site.name}.pem", str(tls / "cert.pem")),
            (f"/etc/ssl/private/{site.name}.key", str(tls / "key.pem")),
            (f"https://{site.name}", f"https://{site.host}:{https_port}"),
            (site.name, site.host),
        ]

    for site in sites:
        pairs += [(f"{site.srv}/.venv", sys.prefix), (site.srv, str(site.folder))]

    return [*pairs, ("/var/log/apache2", str(logs))]


def module_config() -> str:
    """The ``LoadModule`` line for this Python's mod_wsgi, as the docs make it."""
    output = subprocess.run(
        [str(EXPRESS), "module-config"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return "".join(line + "\n" for line in output.splitlines() if "LoadModule" in line)


def top_level_config(
    run: Path,
    http_port: int,
    https_port: int,
    modules: Sequence[str],
    document_root: Path,
) -> str:
    """What Debian's apache2.conf, ports.conf and mods-enabled would give."""
    lines = [
        "ServerRoot /etc/apache2",
        f"ServerName {LOOPBACK}",
        f"Listen {LOOPBACK}:{http_port}",
        f"Listen {LOOPBACK}:{https_port} https",
        f"PidFile {run}/httpd.pid",
        f"DefaultRuntimeDir {run}",
        f"ErrorLog {run}/error.log",
        "LogLevel warn",
        # mod_wsgi's daemon sockets; Debian's default, /var/run/apache2, is
        # made by its init scripts, which these tests do not run.
        f"WSGISocketPrefix {run}/wsgi",
    ]
    if IS_ROOT:
        lines += [f"User {RUN_USER}", f"Group {RUN_USER}"]

    lines += [f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in modules]
    lines += [
        "TypesConfig /etc/mime.types",
        'LogFormat "%h %l %u %t \\"%r\\" %>s %O" combined',
        f"SSLSessionCache shmcb:{run}/ssl_scache(512000)",
        # Hostile on purpose: the virtual host must protect the reports.
        f'DocumentRoot "{document_root}"',
        f"Include {run}/wsgi.load",
        f"Include {run}/site.conf",
    ]
    return "\n".join(lines) + "\n"


def make_certificate(folder: Path, hosts: Sequence[str]) -> ssl.SSLContext:
    """Write a self-signed certificate for *hosts*; return a context trusting it."""
    folder.mkdir(mode=0o700)
    names = ",".join(
        f"IP:{host}" if host[0].isdigit() else f"DNS:{host}" for host in hosts
    )
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec"]
        + ["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
        + ["-subj", "/CN=static-gate test", "-addext", f"subjectAltName={names}"]
        + ["-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return ssl.create_default_context(cafile=str(folder / "cert.pem"))


# -- running Apache --------------------------------------------------------


@dataclass
class Apache:
    """A running Apache serving one example file."""

    example: str
    server: Server
    tls: ssl.SSLContext
    sites: list[Site]
    https_port: int
    logs: Path
    #: alice's session, shared by the tests that only read.
    saved_cookie: str = ""

    @property
    def site(self) -> Site:
        return self.sites[0]

    def url(self, site: Site | None = None) -> str:
        return f"https://{(site or self.site).host}:{self.https_port}"

    @property
    def http_url(self) -> str:
        return self.server.url

    def client(self, site: Site | None = None, cookie: str | None = None) -> HttpClient:
        cookies = {COOKIE: cookie} if cookie else None
        return HttpClient(self.url(site), tls=self.tls, cookies=cookies)

    def signed_in(self, user: str = "alice", site: Site | None = None) -> HttpClient:
        client = self.client(site)
        reply = client.sign_in(user, PASSWORDS[user])
        assert reply.status == 303, reply.text
        assert COOKIE in client.cookies
        return client

    def reader(self) -> HttpClient:
        """A visitor holding alice's shared session: one sign-in per server."""
        if not self.saved_cookie:
            self.saved_cookie = self.signed_in().cookies[COOKIE]

        return self.client(cookie=self.saved_cookie)

    def error_log(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in self.logs.glob("*error.log")
        )


def require_apache(*modules: Path) -> None:
    require("apache2", APACHE2 is not None, "apt-get install apache2 (.ci/run does)")
    require(
        "mod_wsgi for this Python",
        has_module("mod_wsgi") and EXPRESS.exists(),
        "apt-get install apache2-dev, then pip install mod_wsgi in the virtual "
        "environment (.ci/run does both)",
    )
    for module in modules:
        require(
            module.name, module.exists(), "apt-get install libapache2-mod-xsendfile"
        )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Callable[[str], Path]]:
    """Make folders under /tmp that www-data can reach; remove them at the end.

    pytest's tmp_path is under /tmp/pytest-of-root, mode 700, closed to
    www-data.
    """
    made: list[Path] = []

    def make(prefix: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"static-gate-{prefix}-", dir="/tmp"))
        folder.chmod(0o755)
        made.append(folder)
        return folder

    yield make

    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def start_apache(
    example: str,
    sites: Sequence[Site],
    scratch: Path,
    modules: Sequence[str] = BASE_MODULES,
) -> Apache:
    """Start Apache on *example* and wait until its gate answers over https."""
    assert APACHE2 is not None
    run = scratch / "run"
    run.mkdir(mode=0o755)
    require_reachable(run, *(site.folder / "app" for site in sites))
    http_port, https_port = free_port(), free_port()
    tls = make_certificate(scratch / "tls", [site.host for site in sites])
    pairs = placeholders(sites, http_port, https_port, scratch / "tls", run)
    text = replace_all((EXAMPLES / example).read_text("utf-8"), pairs, example)
    (run / "site.conf").write_text(text, encoding="utf-8")
    (run / "wsgi.load").write_text(module_config(), encoding="utf-8")
    error_logs = sorted(set(re.findall(r"^\s*ErrorLog\s+(\S+)", text, re.MULTILINE)))
    config = run / "httpd.conf"
    config.write_text(
        top_level_config(run, http_port, https_port, modules, sites[0].folder),
        encoding="utf-8",
    )

    server = Server(
        f"apache-{Path(example).stem}",
        [APACHE2, "-f", str(config), "-DFOREGROUND"],
        http_port,
        run,
        # The entry file's default must decide, not the test's environment.
        env={"STATIC_GATE_CONFIG": None, "STATIC_GATE_SECRET_KEY": None},
        ready=answers_http,
        extra_logs=[run / "error.log", *map(Path, error_logs)],
    )
    apache = Apache(example, server, tls, list(sites), https_port, run)
    server.start()
    try:
        for site in sites:
            wake(apache, site)
    except BaseException:
        server.stop()
        raise

    return apache


def wake(apache: Apache, site: Site) -> None:
    """Wait until the site's daemon processes have loaded the gate."""
    client = HttpClient(apache.url(site), tls=apache.tls, timeout=START_SECONDS)
    try:
        reply = client.get(LOGIN)
    except OSError as error:
        reply = None
        problem = repr(error)
    else:
        problem = f"status {reply.status}"

    if reply is None or reply.status != 200:
        pytest.fail(
            f"{site.host}: {LOGIN} answered {problem}:\n{apache.server.log_tail()}"
        )


@pytest.fixture(scope="module", params=["static-gate.conf", "xsendfile.conf"])
def apache(
    request: pytest.FixtureRequest, scratch: Callable[[str], Path]
) -> Iterator[Apache]:
    """Apache from static-gate.conf, then from xsendfile.conf."""
    example: str = request.param
    offloads = example == "xsendfile.conf"
    require_apache(*([MOD_XSENDFILE] if offloads else []))
    folder = scratch("apache")
    site = Site("example.org", "/srv/reports", LOOPBACK, folder / "reports")
    lay_out(site, offload="x-sendfile" if offloads else "none")
    modules = [*BASE_MODULES, "xsendfile"] if offloads else BASE_MODULES
    running = start_apache(example, [site], folder, modules)
    yield running
    running.server.stop()


# -- the tests -------------------------------------------------------------


def is_login_redirect(reply: Reply) -> bool:
    location = reply.header("Location") or ""
    return reply.status == 303 and location.startswith(f"{LOGIN}?next=")


def test_plain_http_only_redirects_to_https(apache: Apache) -> None:
    reply = HttpClient(apache.http_url).get(f"{REPORT}?week=3")

    assert reply.status == 301
    assert reply.header("Location") == f"{apache.url()}{REPORT}?week=3"
    assert REPORT_TEXT not in reply.text


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_anonymous_visitor_is_sent_to_the_login_page(
    apache: Apache, method: str
) -> None:
    reply = apache.client().request(method, REPORT)

    assert reply.status == 303
    assert reply.header("Location") == f"{LOGIN}?next=%2Freport.html"
    assert REPORT_TEXT not in reply.text


def test_sign_in_over_https_sets_a_secure_host_only_cookie(apache: Apache) -> None:
    client = apache.client()

    reply = client.sign_in("alice", PASSWORDS["alice"])

    assert reply.status == 303
    (line,) = [x for x in reply.set_cookie_lines() if x.startswith(COOKIE + "=")]
    assert "; Secure" in line
    assert "; HttpOnly" in line
    assert "; Path=/" in line
    assert "Domain=" not in line


def test_signed_in_reader_gets_the_report_with_protective_headers(
    apache: Apache,
) -> None:
    reply = apache.reader().get(REPORT)

    assert reply.status == 200
    assert reply.text == report_html(REPORT_TEXT)
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    for name, value in PROTECTIVE.items():
        assert reply.header(name) == value, name
    assert "Cookie" in (reply.header("Vary") or "")
    assert reply.header("Content-Security-Policy") == "frame-ancestors 'none'"
    assert reply.header("Strict-Transport-Security") == HSTS
    assert reply.header("X-Sendfile") is None


@pytest.mark.parametrize("name", NON_ASCII_NAMES)
def test_report_with_a_non_ascii_name_is_served(apache: Apache, name: str) -> None:
    reply = apache.reader().get(quote(f"/{name}"))

    assert reply.status == 200
    assert reply.text == report_html(REPORT_TEXT)


def test_unchanged_report_answers_304_to_its_etag(apache: Apache) -> None:
    client = apache.reader()
    etag = client.get(REPORT).header("ETag")
    assert etag

    reply = client.request("GET", REPORT, headers={"If-None-Match": etag})

    assert reply.status == 304
    assert reply.text == ""
    assert reply.header("Cache-Control") == PROTECTIVE["Cache-Control"]
    assert reply.header("X-Sendfile") is None


def test_range_request_answers_206_with_those_bytes(apache: Apache) -> None:
    client = apache.reader()
    size = len(report_html(REPORT_TEXT).encode())

    reply = client.request("GET", REPORT, headers={"Range": "bytes=0-9"})

    assert reply.status == 206
    assert reply.text == report_html(REPORT_TEXT)[:10]
    assert reply.header("Content-Range") == f"bytes 0-9/{size}"
    for name, value in PROTECTIVE.items():
        assert reply.header(name) == value, name
    assert reply.header("X-Sendfile") is None


def test_sign_out_ends_the_saved_cookie(apache: Apache) -> None:
    client = apache.signed_in()
    saved = client.cookies[COOKIE]
    assert apache.client(cookie=saved).get(REPORT).status == 200

    assert client.sign_out().status == 303

    reply = apache.client(cookie=saved).get(REPORT)
    assert is_login_redirect(reply)
    assert REPORT_TEXT not in reply.text


def test_access_log_names_the_signed_in_user(apache: Apache) -> None:
    """The gate's user header reaches Apache's log, never the browser."""
    reply = apache.reader().get(REPORT)

    assert reply.status == 200
    assert reply.header("X-Static-Gate-User") is None
    wait_until(
        lambda: any(
            re.search(r" alice \[.*\] \"GET /report", path.read_text(errors="replace"))
            for path in apache.logs.glob("*access.log")
        ),
        5.0,
        "alice in the access log",
    )


def test_sign_in_is_logged_with_the_user_name(apache: Apache) -> None:
    """The audit line reaches the virtual host's ErrorLog through mod_wsgi."""
    apache.signed_in("bob")

    wait_until(
        lambda: "static_gate.audit INFO login user='bob'" in apache.error_log(),
        5.0,
        "bob's login line in the error log",
    )


# What a visitor might try to reach the reports, the entry file, the
# configuration, the key or the users without the gate.  "{srv}" is the
# folder that stands in for /srv/reports.
AROUND_THE_GATE = [
    "/site/report.html",
    "/reports/site/report.html",
    "/srv/reports/site/report.html",
    "{srv}/site/report.html",
    "/{srv}/site/report.html",
    "/app/../site/report.html",
    "/..%2fsite/report.html",
    "/%2e%2e/site/report.html",
    "/%2E%2E%2Fsite%2Freport.html",
    "/_protected/report.html",
    "/app/static-gate.wsgi",
    "/static-gate.wsgi",
    "/gate.toml",
    "/%2e%2e/gate.secret",
    "/../users.txt",
    "/state/static-gate.sqlite3",
]


@pytest.mark.parametrize("user", [None, "alice"])
@pytest.mark.parametrize("template", AROUND_THE_GATE)
def test_nothing_is_reachable_around_the_gate(
    apache: Apache, template: str, user: str | None
) -> None:
    client = apache.reader() if user else apache.client()
    path = template.format(srv=apache.site.folder)

    reply = client.get(path)

    assert reply.status != 200, reply.text
    for secret in (REPORT_TEXT, KEY, "STATIC_GATE_CONFIG", "argon2id"):
        assert secret not in reply.text


def test_x_sendfile_from_the_client_does_nothing(apache: Apache) -> None:
    report = str(apache.site.folder / "site" / "report.html")

    anonymous = apache.client().request("GET", REPORT, headers={"X-Sendfile": report})
    signed_in = apache.reader().request(
        "GET", "/missing.html", headers={"X-Sendfile": "/etc/passwd"}
    )

    assert is_login_redirect(anonymous)
    assert REPORT_TEXT not in anonymous.text
    assert signed_in.status == 404
    assert "root:" not in signed_in.text


# -- X-Sendfile is limited to the reports folder ----------------------------


@pytest.fixture(scope="module")
def apache_elsewhere(scratch: Callable[[str], Path]) -> Iterator[Apache]:
    """xsendfile.conf in front of a gate that serves a folder beside site/."""
    require_apache(MOD_XSENDFILE)
    folder = scratch("elsewhere")
    site = Site("example.org", "/srv/reports", LOOPBACK, folder / "reports")
    lay_out(site, offload="x-sendfile", root="elsewhere")
    modules = [*BASE_MODULES, "xsendfile"]
    running = start_apache("xsendfile.conf", [site], folder, modules)
    yield running
    running.server.stop()


def test_x_sendfile_outside_the_reports_folder_sends_nothing(
    apache_elsewhere: Apache,
) -> None:
    """The gate allows the file, but XSendFilePath does not cover it."""
    reply = apache_elsewhere.reader().get(REPORT)

    assert reply.status == 404
    assert REPORT_TEXT not in reply.text
    wait_until(
        lambda: (
            "The given path was above the root path" in apache_elsewhere.error_log()
        ),
        5.0,
        "mod_xsendfile's refusal in the error log",
    )


# -- several sites, one daemon group each ------------------------------------


@pytest.fixture(scope="module")
def two_sites(scratch: Callable[[str], Path]) -> Iterator[Apache]:
    """multi-site.conf: reports.example.org as localhost, grades as 127.0.0.1."""
    require_apache()
    folder = scratch("multi")
    sites = [
        Site("reports.example.org", "/srv/reports", "localhost", folder / "reports"),
        Site(
            "grades.example.org",
            "/srv/grades",
            LOOPBACK,
            folder / "grades",
            text="Grades: carol B+, dave A-",
        ),
    ]
    for site, key in zip(sites, ("r", "g"), strict=True):
        lay_out(site)
        # Each site signs with its own key.
        (site.folder / "gate.secret").write_text(key * 48 + "\n", encoding="utf-8")

    running = start_apache("multi-site.conf", sites, folder)
    yield running
    running.server.stop()


def daemon_processes(server: Server) -> dict[str, set[int]]:
    """Map the display name of each mod_wsgi daemon of *server* to its users."""
    found: dict[str, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue

        try:
            if os.getpgid(int(entry.name)) != server.pid:
                continue

            name = (entry / "cmdline").read_bytes().split(b"\0")[0].decode().strip()
            status = (entry / "status").read_text()
        except (OSError, UnicodeDecodeError):
            continue

        uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        if name.startswith("(wsgi:") and uid:
            found.setdefault(name, set()).add(int(uid.group(1)))

    return found


def test_each_site_serves_its_own_reports(two_sites: Apache) -> None:
    for site in two_sites.sites:
        reply = two_sites.signed_in(site=site).get(REPORT)

        assert reply.status == 200
        assert reply.text == report_html(site.text)


def test_a_session_of_one_site_opens_nothing_on_the_other(two_sites: Apache) -> None:
    reports, grades = two_sites.sites
    saved = two_sites.signed_in(site=reports).cookies[COOKIE]

    reply = two_sites.client(grades, cookie=saved).get(REPORT)

    assert is_login_redirect(reply)
    assert grades.text not in reply.text


def test_each_site_has_a_daemon_group_of_its_own(two_sites: Apache) -> None:
    require("/proc", Path("/proc/self/status").exists(), "run on Linux")

    daemons = daemon_processes(two_sites.server)

    assert set(daemons) == {"(wsgi:reports)", "(wsgi:grades)"}
    if IS_ROOT:
        www_data = pwd.getpwnam(RUN_USER).pw_uid
        assert all(users == {www_data} for users in daemons.values())


# -- mod_wsgi-express, the quick start ---------------------------------------


def test_mod_wsgi_express_quick_start_serves_the_gate(
    scratch: Callable[[str], Path],
) -> None:
    require_apache()
    folder = scratch("express")
    site = Site("example.org", "/srv/reports", LOOPBACK, folder / "reports")
    lay_out(site)
    require_reachable(folder, site.folder / "app")
    port = free_port()
    command = [str(EXPRESS), "start-server", str(site.folder / "app/static-gate.wsgi")]
    command += ["--host", LOOPBACK, "--port", str(port), "--locale", "C.UTF-8"]
    command += ["--server-root", str(folder / "express"), "--log-to-terminal"]
    command += ["--processes", "1", "--threads", "4"]
    if IS_ROOT:
        command += ["--user", RUN_USER, "--group", RUN_USER]

    server = Server(
        "mod_wsgi-express",
        command,
        port,
        folder,
        env={"STATIC_GATE_CONFIG": None, "STATIC_GATE_SECRET_KEY": None},
        ready=answers_http,
    )
    with server:
        cookie = sign_in(server.url, "alice", PASSWORDS["alice"])
        reply = HttpClient(server.url, cookies={SESSION_COOKIE: cookie}).get(REPORT)

    assert reply.status == 200
    assert reply.text == report_html(REPORT_TEXT)
