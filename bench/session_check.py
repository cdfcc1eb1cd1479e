"""How much the shared-store session check adds to a signed-in request.

Run from the repository root:

    python bench/session_check.py [--repeats 7] [--number 2000]

For each store (memory, SQLite, and Redis when ``redis-server`` is
installed) it measures, in one run with interleaved repeats:

- the store lookup alone against the signed-cookie check alone (what a
  stateless gate would do), and
- a whole signed-in request for a 20 KB page through the gate, against the
  same request with the memory store.

It prints ratios (median of the repeats); the absolute figures are printed
too, for context only, since machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from argon2 import PasswordHasher
from werkzeug.test import Client, EnvironBuilder

from static_gate import Gate, load_config
from static_gate.credentials import Account, format_users
from static_gate.stores import session_handle

HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "bench-password-1"


def make_site(folder: Path, store: str) -> Path:
    site = folder / "site"
    site.mkdir(exist_ok=True)
    (site / "page.html").write_bytes(b"<p>" + b"x" * 20_000 + b"</p>")
    key = folder / "gate.secret"
    key.write_text("b" * 48 + "\n")
    key.chmod(0o600)
    users = {"alice": Account("alice", HASHER.hash(PASSWORD), frozenset())}
    (folder / "users.txt").write_text(format_users(users))
    config = folder / f"gate-{store.split(':')[0]}.toml"
    config.write_text(
        f'[static]\nroot = "site"\n[auth]\nusers_file = "users.txt"\n'
        f'[session]\nsecret_file = "gate.secret"\n[state]\nstore = "{store}"\n'
    )
    return config


def sign_in(gate: Gate) -> str:
    client = Client(gate)
    page = client.get("/_gate/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/_gate/login",
        data={"csrf_token": token, "user": "alice", "password": PASSWORD},
    )
    cookie = client.get_cookie("static_gate")
    assert cookie is not None, "sign-in failed"
    return cookie.value


def timed(work: Callable[[], object], number: int) -> float:
    """Seconds per call of *work*, over *number* calls."""
    start = time.perf_counter()
    for _ in range(number):
        work()
    return (time.perf_counter() - start) / number


def request_of(gate: Gate, cookie: str) -> Callable[[], object]:
    environ = EnvironBuilder(
        path="/page.html", headers={"Cookie": f"static_gate={cookie}"}
    ).get_environ()

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        return None

    def request() -> object:
        body = gate(dict(environ), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return body

    return request


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
        ],
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as temporary,
        redis_server(Path(temporary)) as redis_url,
    ):
        folder = Path(temporary)
        stores = {"memory": "memory", "sqlite": "sqlite"}
        if redis_url:
            stores["redis"] = redis_url
        else:
            print("redis-server not found: Redis is left out")

        gates = {
            name: Gate(load_config(make_site(folder, url)), hasher=HASHER)
            for name, url in stores.items()
        }
        cookies = {name: sign_in(gate) for name, gate in gates.items()}
        now = time.time()
        some_gate = gates["memory"]
        cookie = cookies["memory"]

        work: dict[str, tuple[Callable[[], object], int]] = {
            "cookie": (lambda: some_gate.sessions.load(cookie, now), args.number),
        }
        for name, gate in gates.items():
            session = gate.sessions.load(cookies[name], now).session
            assert session is not None
            handle = session_handle(session.id)
            work["lookup " + name] = (
                lambda gate=gate, handle=handle: gate.store.has_session(handle, now),
                args.number,
            )
            work["request " + name] = (
                request_of(gate, cookies[name]),
                max(1, args.number // 4),
            )

        results: dict[str, list[float]] = {name: [] for name in work}
        for _ in range(args.repeats):
            for name, (call, number) in work.items():
                results[name].append(timed(call, number))

        median = {name: statistics.median(times) for name, times in results.items()}

    print(f"{sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"repeats {args.repeats}, interleaved; medians\n")
    print("store lookup per request, against the signed-cookie check alone")
    base = median["cookie"]
    print(f"  {'cookie check':<18} 1.00   ({base * 1e6:7.1f} us)")
    for name in gates:
        value = median["lookup " + name]
        print(f"  {name + ' lookup':<18} {value / base:5.2f}   ({value * 1e6:7.1f} us)")

    print("\nwhole signed-in request for a 20 KB page, against the memory store")
    base = median["request memory"]
    for name in gates:
        value = median["request " + name]
        print(f"  {name:<18} {value / base:5.2f}   ({value * 1e6:7.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
