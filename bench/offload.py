"""nginx sending the files for the gate, against nginx alone, as ratios.

Run from the repository root, after ``pip install -e '.[test,bench]'``:

    python bench/offload.py [--repeats 3] [--seconds 3]

Needs ``wrk``, ``openssl`` and nginx with its auth_request module (Debian's
has it).  Each example under ``nginx/`` runs as ``tests/test_deploy_nginx.py``
runs it: adapted by substitution only, over https with a self-signed
certificate, in front of the gate under gunicorn (2 gthread workers x 4
threads), with one nginx worker.  One location is added to each example,
``/direct/``, which serves the same folder without the gate, so that both
sides of a ratio go through the same nginx, the same TLS and the same
cookie, and differ only by the gate.  Every request is signed in, with a
cookie got once through nginx.

Both sides of each comparison run in the same run, in interleaved repeats,
and the median ratio is printed; absolute figures are printed for context
only, since the machines here are shared and noisy.

1. X-Accel-Redirect (every request goes to the gate, which names the file
   nginx sends) against nginx alone: a 1 MB file (8 connections, requests
   per second), target 0.8 or more; a 100 MB file (2 connections, MB/s,
   counting unfinished answers too), target 0.9 or more.
2. auth_request (nginx asks the gate, then sends the file itself): the same.
3. The cached auth_request variant against nginx alone for a 20 KB page,
   target 0.3 or more, and the uncached variant for comparison.

wrk, nginx and the gate share this machine's CPUs, so whatever the gate
spends on a request is taken from nginx's TLS work or wrk's: with few CPUs
the ratios for small files are lower than on a server with cores to spare.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serving import (  # noqa: E402  (the serving benchmark's helpers)
    BIG,
    HUGE,
    PAGE,
    PASSWORD,
    gunicorn,
    make_site,
    running,
    wrk,
)

from conftest import render_toml  # noqa: E402
from servers import (  # noqa: E402
    LOOPBACK,
    HttpClient,
    Server,
    gate_environment,
    sign_in,
)
from test_deploy_nginx import (  # noqa: E402  (how the examples are made runnable)
    AUTH,
    CACHED,
    COOKIE,
    EXAMPLES,
    X_ACCEL,
    adapt,
    free_ports,
    gate_settings,
    has_auth_request,
    make_certificate,
    nginx_program,
    top_level_config,
)

#: The location added to each example: the same folder, no gate.
DIRECT = "/direct/"
MB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One comparison: a path through the gate, and the same one direct."""

    section: str
    label: str
    variant: str
    path: str
    connections: int
    #: ``"rate"`` (requests per second) or ``"bytes"`` (per second).
    measure: str
    target: float | None


CASES = [
    Case("X-Accel-Redirect", "1 MB file", X_ACCEL, BIG, 8, "rate", 0.8),
    Case("X-Accel-Redirect", "100 MB file", X_ACCEL, HUGE, 2, "bytes", 0.9),
    Case("auth_request", "1 MB file", AUTH, BIG, 8, "rate", 0.8),
    Case("auth_request", "100 MB file", AUTH, HUGE, 2, "bytes", 0.9),
    Case("20 KB page", "cached auth_request", CACHED, PAGE, 8, "rate", 0.3),
    Case("20 KB page", "auth_request", AUTH, PAGE, 8, "rate", None),
]


def with_direct_location(text: str, site: Path) -> str:
    """Add ``location /direct/`` to the last server block: the https one."""
    head, brace, tail = text.rstrip().rpartition("}")
    last_server = head.rpartition("server {")[2]
    if not brace or tail or " ssl;" not in last_server:
        raise RuntimeError("the example no longer ends with its https server")

    location = f"\n    location {DIRECT} {{\n        alias {site}/;\n    }}\n"
    return f"{head}{location}}}\n"


def deploy(
    variant: str, folder: Path, certificate: tuple[Path, Path], program: str
) -> tuple[Server, Server]:
    """Write a site, the gate's config and nginx's for one example.

    Returns the gate's gunicorn and nginx, not yet started.
    """
    config = make_site(folder)
    site = folder / "site"
    prefix = folder / "nginx"
    for path in (prefix, prefix / "temp", prefix / "cache"):
        path.mkdir(mode=0o755)

    gate = gunicorn(
        "static_gate.wsgi:application", folder / "logs", gate_environment(config)
    )
    http_port, https_port = free_ports(2, taken={gate.port})
    example = (EXAMPLES / f"{variant}.conf").read_text(encoding="utf-8")
    # The same substitutions as the tests make.
    replacements = {
        "/etc/letsencrypt/live/example.org/fullchain.pem": str(certificate[0]),
        "/etc/letsencrypt/live/example.org/privkey.pem": str(certificate[1]),
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

    text = with_direct_location(adapt(example, replacements), site)
    tables = {
        **gate_settings(text),
        "auth": {"users_file": "users.txt"},
        "session": {"secret_file": "gate.secret"},
    }
    config.write_text(render_toml(tables), encoding="utf-8")
    (prefix / "server.conf").write_text(text, encoding="utf-8")
    (prefix / "nginx.conf").write_text(top_level_config("server.conf"))
    nginx = Server(
        "nginx",
        [program, "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "error.log"],
        https_port,
        folder / "logs",
        extra_logs=[prefix / "error.log"],
    )
    return gate, nginx


def direct_path(path: str) -> str:
    """The same file through the location without the gate."""
    return DIRECT + path.lstrip("/")


def check_served(
    urls: dict[str, str], cookies: dict[str, str], tls: ssl.SSLContext
) -> None:
    """Ask for the first byte of every URL measured: a 206 means it was sent.

    wrk counts redirects as successes, so an ended session, which the gate
    answers with a small redirect to its login page, would go unseen there.
    """
    for case in CASES:
        jar = {COOKIE: cookies[case.variant]}
        client = HttpClient(urls[case.variant], cookies=jar, tls=tls)
        for path in (case.path, direct_path(case.path)):
            reply = client.request("GET", path, headers={"Range": "bytes=0-0"})
            if reply.status != 206:
                raise RuntimeError(
                    f"{case.variant}: {path} answered {reply.status}, not 206:\n"
                    f"{reply.text[:300]}"
                )


def compare(
    urls: dict[str, str], cookies: dict[str, str], repeats: int, seconds: float
) -> dict[Case, list[tuple[float, float]]]:
    """Run every case, gated then direct or the other way round by turns."""
    results: dict[Case, list[tuple[float, float]]] = {case: [] for case in CASES}
    for repeat in range(repeats):
        for case in CASES:
            headers = {"Cookie": f"{COOKIE}={cookies[case.variant]}"}
            base = urls[case.variant]
            runs = [
                ("gated", base + case.path),
                ("direct", base + direct_path(case.path)),
            ]
            if repeat % 2:
                runs.reverse()

            measured = {
                side: wrk(url, seconds, headers, case.connections)[case.measure]
                for side, url in runs
            }
            results[case].append((measured["gated"], measured["direct"]))

    return results


def report(results: dict[Case, list[tuple[float, float]]]) -> None:
    """Print each case's median ratio, its range, and the medians behind it."""
    section = ""
    for case, pairs in results.items():
        if case.section != section:
            section = case.section
            print(f"\n{section}: through the gate / nginx alone")

        ratios = [gated / direct for gated, direct in pairs]
        unit, scale = ("requests/s", 1.0) if case.measure == "rate" else ("MB/s", MB)
        gated = statistics.median(pair[0] for pair in pairs) / scale
        direct = statistics.median(pair[1] for pair in pairs) / scale
        verdict = "for comparison"
        if case.target is not None:
            met = statistics.median(ratios) >= case.target
            verdict = f"target {case.target:g}: {'met' if met else 'missed'}"

        print(
            f"   {case.label:<20} {statistics.median(ratios):5.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]  {verdict:<18} "
            f"({unit}: gated {gated:,.0f}, direct {direct:,.0f})"
        )


def nginx_version(program: str) -> str:
    found = subprocess.run(
        [program, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    return found.stderr.strip().rpartition(" ")[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    program = nginx_program() or ""
    missing = [name for name in ("wrk", "openssl") if shutil.which(name) is None]
    if not program or not has_auth_request(program):
        missing.append("nginx with auth_request")
    if missing:
        print(f"bench/offload.py needs {', '.join(missing)}", file=sys.stderr)
        return 2

    print(shlex.join([sys.executable, *sys.argv]))
    print(
        f"{len(CASES)} comparisons x {args.repeats} repeats x 2 sides x "
        f"{args.seconds:g} s of wrk each"
    )
    print(
        f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {nginx_version(program)}"
    )
    with ExitStack() as stack:
        # nginx's workers run as www-data: the folder must be open to them.
        shared = Path(tempfile.mkdtemp(prefix="static-gate-offload-", dir="/tmp"))
        stack.callback(shutil.rmtree, shared, True)
        shared.chmod(0o755)
        cert, key, tls = make_certificate(shared / "tls")
        urls: dict[str, str] = {}
        cookies: dict[str, str] = {}
        for variant in dict.fromkeys(case.variant for case in CASES):
            # Started one at a time, so that no two get the same free port.
            gate, nginx = deploy(variant, shared / variant, (cert, key), program)
            stack.enter_context(running(gate, nginx))
            urls[variant] = f"https://{LOOPBACK}:{nginx.port}"
            cookies[variant] = sign_in(
                urls[variant], "alice", PASSWORD, cookie=COOKIE, tls=tls
            )

        check_served(urls, cookies, tls)
        results = compare(urls, cookies, args.repeats, args.seconds)
        check_served(urls, cookies, tls)

    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
