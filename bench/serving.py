"""Serving speed of the gate, side by side with baselines, as ratios.

Run from the repository root, after ``pip install -e '.[test,bench]'``:

    python bench/serving.py [--repeats 5] [--seconds 3]

Needs ``wrk`` (Debian package ``wrk``).  Every comparison runs both sides
in the same run, under the same server settings, in interleaved repeats,
and prints the median ratio; absolute figures are printed for context only,
since the machines here are shared and noisy.

1. Signed-in requests through static-gate against WhiteNoise without any
   gate, both under gunicorn (2 gthread workers, 4 threads): a 20 KB page,
   a 1 MB file, and a 304 answer.  Target: 0.95 or more.
2. The gate's own work per request, in process: the cookie check, the rule
   match and the header list, against a whole request.
3. Memory while streaming a 100 MB file: growth of the worker's peak RSS per
   download.  Target: under 10 MB.
4. The 99th percentile latency of signed-in reads during a bounded flood of
   wrong logins, against the same without the flood.  Target: 2.0 or less.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from argon2 import PasswordHasher  # noqa: E402

import servers  # noqa: E402  (the tests' helpers for real servers)
from static_gate.credentials import Account, format_users  # noqa: E402

HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "bench-password-1"
PAGE, BIG, HUGE = "/page-20k.html", "/file-1m.bin", "/file-100m.bin"


def make_site(folder: Path, throttle: str = "") -> Path:
    """Write a site, a key, a users file and a gate configuration."""
    site = folder / "site"
    site.mkdir(parents=True)
    (site / PAGE[1:]).write_bytes(b"<p>" + b"x" * 20_473 + b"</p>")
    (site / BIG[1:]).write_bytes(os.urandom(1 << 20))
    with open(site / HUGE[1:], "wb") as file:
        file.truncate(100 << 20)
    key = folder / "gate.secret"
    key.write_text("b" * 48 + "\n")
    key.chmod(0o600)
    users = {"alice": Account("alice", HASHER.hash(PASSWORD), frozenset())}
    (folder / "users.txt").write_text(format_users(users))
    config = folder / "gate.toml"
    config.write_text(
        '[static]\nroot = "site"\n[auth]\nusers_file = "users.txt"\n'
        f'[session]\nsecret_file = "gate.secret"\n{throttle}'
    )
    return config


def gunicorn(app: str, log_dir: Path, env: dict[str, str | None]) -> servers.Server:
    """gunicorn with the same settings for every application compared."""
    port = servers.free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}"]
    command += ["-w", "2", "-k", "gthread", "--threads", "4"]
    command += ["--pythonpath", str(ROOT / "bench"), "--graceful-timeout", "3"]
    if servers._gunicorn_version() >= (25, 1):
        command.append("--no-control-socket")
    command.append(app)
    name = app.split(":")[-1]
    return servers.Server(
        name, command, port, log_dir, env=env, ready=servers.answers_http
    )


def wrk(
    url: str, seconds: float, headers: dict[str, str], connections: int = 8
) -> dict[str, float]:
    """Run wrk; return requests per second, the 99th percentile in ms, and
    bytes per second (which counts the bytes of unfinished answers too)."""
    duration = max(1, round(seconds))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses")
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?)B", output)
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return {
        "rate": rate,
        "p99": float(p99.group(1)) * scale,
        "bytes": float(transfer.group(1)) * unit[transfer.group(2)],
    }


def etag_of(url: str, cookies: dict[str, str]) -> str:
    reply = servers.HttpClient(url, cookies=cookies).get(PAGE)
    return reply.header("ETag") or ""


@contextmanager
def running(*started: servers.Server) -> Iterator[None]:
    try:
        for server in started:
            server.start()
        yield
    finally:
        for server in started:
            server.stop()


def compare_with_whitenoise(
    folder: Path, config: Path, repeats: int, seconds: float
) -> None:
    site = str(folder / "site")
    gate = gunicorn(
        "static_gate.wsgi:application", folder, servers.gate_environment(config)
    )
    baseline = gunicorn(
        "apps:whitenoise_app", folder, {"BENCH_SITE": site, "STATIC_GATE_CONFIG": None}
    )
    with running(gate, baseline):
        cookie = servers.sign_in(gate.url, "alice", PASSWORD)
        signed_in = {"Cookie": f"{servers.SESSION_COOKIE}={cookie}"}
        cases = {
            "20 KB page": (PAGE, {}),
            "1 MB file": (BIG, {}),
            "304": (PAGE, {"If-None-Match": None}),
        }
        ratios: dict[str, list[float]] = {name: [] for name in cases}
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for repeat in range(repeats):
            for name, (path, extra) in cases.items():
                gate_headers = {**signed_in, **extra}
                plain_headers = dict(extra)
                if "If-None-Match" in extra:
                    jar = {servers.SESSION_COOKIE: cookie}
                    gate_headers["If-None-Match"] = etag_of(gate.url, jar)
                    plain_headers["If-None-Match"] = etag_of(baseline.url, {})
                runs = [
                    ("gate", gate.url + path, gate_headers),
                    ("whitenoise", baseline.url + path, plain_headers),
                ]
                if repeat % 2:
                    runs.reverse()
                results = {who: wrk(url, seconds, h)["rate"] for who, url, h in runs}
                ratios[name].append(results["gate"] / results["whitenoise"])
                rates[name].append((results["gate"], results["whitenoise"]))

    print("\n1. signed-in static-gate / WhiteNoise without a gate (gunicorn,")
    print("   2 gthread workers x 4 threads; target 0.95 or more)")
    for name, values in ratios.items():
        gate_rate = statistics.median(r[0] for r in rates[name])
        plain_rate = statistics.median(r[1] for r in rates[name])
        print(
            f"   {name:<12} {statistics.median(values):5.2f}   "
            f"(requests/s: gate {gate_rate:,.0f}, WhiteNoise {plain_rate:,.0f})"
        )


def own_work(config: Path, number: int) -> None:
    from werkzeug.test import Client, EnvironBuilder
    from whitenoise import WhiteNoise

    from static_gate import Gate, load_config
    from static_gate.headers import content_headers

    gate = Gate(load_config(config), hasher=HASHER)
    client = Client(gate)
    page = client.get("/_gate/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post(
        "/_gate/login",
        data={"csrf_token": token, "user": "alice", "password": PASSWORD},
    )
    cookie = client.get_cookie("static_gate").value
    environ = EnvironBuilder(
        path=PAGE, headers={"Cookie": f"static_gate={cookie}"}
    ).get_environ()
    plain = WhiteNoise(None, root=str(config.parent / "site"))
    plain_environ = EnvironBuilder(path=PAGE).get_environ()
    now = time.time()

    def request(app: Callable, base: dict) -> Callable[[], None]:
        def run() -> None:
            body = app(dict(base), lambda status, headers, exc_info=None: None)
            for _ in body:
                pass
            if hasattr(body, "close"):
                body.close()

        return run

    parts = {
        "cookie check": lambda: gate.sessions.load(cookie, now),
        "rule match": lambda: gate.rules.decide(PAGE, "alice", frozenset()),
        "header list": lambda: content_headers(None),
        "store lookup (SQLite)": lambda: gate.store.has_session("x" * 24, now),
        "whole gated request": request(gate, environ),
        "WhiteNoise request": request(plain, plain_environ),
    }
    timings = {
        name: min(timeit.repeat(work, number=number, repeat=5)) / number
        for name, work in parts.items()
    }
    whole = timings["whole gated request"]
    print("\n2. the gate's own work per request, in process (best of 5)")
    for name, seconds in timings.items():
        print(
            f"   {name:<24} {seconds / whole:5.2f} of a gated request "
            f"({seconds * 1e6:6.1f} us)"
        )


def worker_pids(master: int) -> list[int]:
    output = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True
    ).stdout
    return [int(pid) for pid in output.split()]


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def stream_memory(folder: Path, config: Path, downloads: int) -> None:
    server = gunicorn(
        "static_gate.wsgi:application", folder, servers.gate_environment(config)
    )
    with running(server):
        cookie = servers.sign_in(server.url, "alice", PASSWORD)
        jar = {servers.SESSION_COOKIE: cookie}
        servers.HttpClient(server.url, cookies=jar).get(PAGE)
        workers = worker_pids(server.pid)
        before = {pid: peak_rss_kib(pid) for pid in workers}
        for _ in range(downloads):
            connection = http.client.HTTPConnection(
                "127.0.0.1", server.port, timeout=60
            )
            connection.request(
                "GET", HUGE, headers={"Cookie": f"{servers.SESSION_COOKIE}={cookie}"}
            )
            response = connection.getresponse()
            received = 0
            while block := response.read(1 << 20):
                received += len(block)
            connection.close()
            if received != 100 << 20:
                raise RuntimeError(f"downloaded {received} bytes")
        growth = max(peak_rss_kib(pid) - before[pid] for pid in workers)

    print("\n3. streaming a 100 MB file through the gate (gunicorn)")
    print(
        f"   peak RSS growth of a worker over {downloads} downloads: "
        f"{growth / 1024:.1f} MB (target: under 10 MB per download)"
    )


def flood(folder: Path, seconds: float, logins: int) -> None:
    config = make_site(
        folder, throttle="[throttle]\nmax_failures = 100000\n"
    )  # never throttled: the worst case for readers
    server = gunicorn(
        "static_gate.wsgi:application", folder, servers.gate_environment(config)
    )
    with running(server):
        cookie = servers.sign_in(server.url, "alice", PASSWORD)
        headers = {"Cookie": f"{servers.SESSION_COOKIE}={cookie}"}
        calm = wrk(server.url + PAGE, seconds, headers, connections=4)

        def wrong_login(_: int) -> int:
            client = servers.HttpClient(server.url, timeout=60)
            try:
                return client.sign_in("alice", "wrong-password-1").status
            except OSError:
                return 0

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(wrong_login, n) for n in range(logins)]
            stormy = wrk(server.url + PAGE, seconds, headers, connections=4)
            statuses = [future.result(timeout=120) for future in pending]

    print("\n4. signed-in reads during a flood of wrong logins (gunicorn)")
    print(
        f"   p99 with flood / without: {stormy['p99'] / calm['p99']:5.2f} "
        f"(target 2.0 or less; p99 {calm['p99']:.1f} ms -> {stormy['p99']:.1f} ms, "
        f"{len(statuses)} logins: "
        f"{sorted(set(statuses))})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument(
        "--only",
        choices=["whitenoise", "own", "memory", "flood"],
        help="run one part only",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/serving.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    print(
        f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        config = make_site(folder / "a")
        parts = {
            "whitenoise": lambda: compare_with_whitenoise(
                folder / "a", config, args.repeats, args.seconds
            ),
            "own": lambda: own_work(config, number=2000),
            "memory": lambda: stream_memory(folder / "a", config, downloads=3),
            "flood": lambda: flood(folder / "b", args.seconds * 2, logins=60),
        }
        for name, part in parts.items():
            if args.only in (None, name):
                part()
    return 0


if __name__ == "__main__":
    sys.exit(main())
