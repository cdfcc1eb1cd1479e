"""The access trail through the gate: what is recorded, and what never is.

These tests run once ``[trail]`` is part of the configuration and the gate
records its answers; until then they are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

from conftest import KEY, PASSWORDS, form_token, login, logout, signed_in
from static_gate import Gate
from static_gate.cli import main
from static_gate.config import KEYS as KEYS_BY_TABLE
from static_gate.keys import SecretKey
from static_gate.shares import make_share, make_token


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


pytestmark = pytest.mark.skipif(
    "trail" not in KEYS_BY_TABLE, reason="[trail] is not wired into the gate yet"
)

RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
]


@pytest.fixture
def trail_gate(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> Iterator[tuple[Gate, Path]]:
    """A gate that keeps its trail in ``trail.jsonl``, and that file."""
    gate = make_gate(trail={"file": "trail.jsonl"}, rules=RULES)
    try:
        yield gate, tmp_path / "trail.jsonl"
    finally:
        gate.trail.close()


def test_gate_records_who_read_which_file(
    trail_gate: tuple[Gate, Path], site: Path
) -> None:
    gate, path = trail_gate
    client = signed_in(gate, "alice", REMOTE_ADDR="203.0.113.7")

    assert client.get("/staff/grades.html").status_code == 200

    content = [r for r in read_lines(path) if r["event"] == "content"]
    assert content == [
        {
            "time": content[0]["time"],
            "event": "content",
            "user": "alice",
            "share": None,
            "client": "203.0.113.7",
            "method": "GET",
            "path": "/staff/grades.html",
            "rule": "/staff/",
            "decision": "allow",
            "reason": "group listed",
            "status": 200,
            "bytes": (site / "staff/grades.html").stat().st_size,
        }
    ]


def test_gate_records_refusals_but_not_redirects_or_misses(
    trail_gate: tuple[Gate, Path],
) -> None:
    gate, path = trail_gate
    signed_in(gate, None).get("/report.html")
    bob = signed_in(gate, "bob")

    assert bob.get("/staff/grades.html").status_code == 403
    assert bob.get("/missing.html").status_code == 404

    content = [r for r in read_lines(path) if r["event"] == "content"]
    assert [(r["user"], r["status"], r["decision"], r["rule"]) for r in content] == [
        ("bob", 403, "forbid", "/staff/")
    ]


def test_gate_counts_the_bytes_of_a_range(trail_gate: tuple[Gate, Path]) -> None:
    gate, path = trail_gate
    client = signed_in(gate, "alice")

    response = client.get("/data/big.csv", headers={"Range": "bytes=0-9"})

    assert response.status_code == 206
    assert read_lines(path)[-1]["bytes"] == 10


def test_gate_passes_the_file_wrapper_on_and_records_its_length(
    trail_gate: tuple[Gate, Path], site: Path
) -> None:
    """Wrapping the server's file wrapper would cost it sendfile."""
    gate, path = trail_gate
    client = signed_in(gate, "alice")
    cookie = client.get_cookie("static_gate")
    assert cookie is not None
    environ = EnvironBuilder(
        path="/data/big.csv", headers={"Cookie": f"static_gate={cookie.value}"}
    ).get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper

    body = gate(environ, lambda status, headers, exc_info=None: lambda data: None)
    try:
        assert isinstance(body, FileWrapper)
    finally:
        body.close()

    assert read_lines(path)[-1]["bytes"] == (site / "data/big.csv").stat().st_size


def test_gate_records_what_a_wrapped_application_sent(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"grades: ", b"A, B"]

    gate = make_gate(app, trail={"file": "trail.jsonl"}, rules=RULES)
    try:
        client = signed_in(gate, "alice")
        client.post("/staff/grades", data={"a": "1"})
    finally:
        gate.trail.close()

    record = read_lines(tmp_path / "trail.jsonl")[-1]
    assert (record["method"], record["path"], record["status"], record["bytes"]) == (
        "POST",
        "/staff/grades",
        200,
        12,
    )


def test_auth_endpoint_records_its_answers(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> None:
    """Behind auth_request, nginx sends the file: no method, no byte count."""
    gate = make_gate(
        trail={"file": "trail.jsonl"}, proxy={"trusted": ["127.0.0.1"]}, rules=RULES
    )
    try:
        client = signed_in(gate, "bob", REMOTE_ADDR="127.0.0.1")
        for uri in ("/report.html?token=SECRETQUERY", "/staff/grades.html"):
            client.get("/_gate/auth", headers={"X-Original-URI": uri})
    finally:
        gate.trail.close()

    trail_file = tmp_path / "trail.jsonl"
    content = [r for r in read_lines(trail_file) if r["event"] == "content"]
    assert [
        (r["path"], r["status"], r["decision"], r["method"], r["bytes"])
        for r in content
    ] == [
        ("/report.html", 204, "allow", None, None),
        ("/staff/grades.html", 403, "forbid", None, None),
    ]
    assert "SECRET" not in trail_file.read_text()


def test_share_link_reads_carry_the_link_id_never_its_token(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> None:
    gate = make_gate(trail={"file": "trail.jsonl"}, rules=RULES)
    record = make_share("/staff/grades.html", "@root", gate.clock(), 86400, None)
    gate.store.add_share(record)
    token = make_token([SecretKey(KEY.encode())], record.id)
    try:
        client = signed_in(gate, None)
        client.post(f"/_gate/share/{token}")
        assert client.get("/staff/grades.html").status_code == 200
    finally:
        gate.trail.close()

    trail_file = tmp_path / "trail.jsonl"
    records = [
        (r["event"], r["user"], r["share"], r["path"]) for r in read_lines(trail_file)
    ]
    assert records == [
        ("share-opened", None, record.id, "/staff/grades.html"),
        ("content", None, record.id, "/staff/grades.html"),
    ]
    assert token not in trail_file.read_text()
    assert record.id in token  # so the check above means something


def test_gate_records_sign_in_events(trail_gate: tuple[Gate, Path]) -> None:
    gate, path = trail_gate
    client = signed_in(gate, None, REMOTE_ADDR="198.51.100.9")

    assert login(client, "alice", "not-her-password").status_code == 401
    assert login(client, "alice").status_code == 303
    assert logout(client).status_code == 303

    events = [(r["event"], r["user"], r["status"]) for r in read_lines(path)]
    assert events == [
        ("login-failed", "alice", 401),
        ("login", "alice", 303),
        ("logout", "alice", 303),
    ]
    assert {r["client"] for r in read_lines(path)} == {"198.51.100.9"}


def test_gate_trail_never_holds_secrets(trail_gate: tuple[Gate, Path]) -> None:
    """No password, cookie, form token or query string reaches the file."""
    gate, path = trail_gate
    client = signed_in(gate, None)
    page = client.get("/_gate/login?next=/report.html%3Ftoken%3DSECRETNEXT")
    form = form_token(page)
    client.post(
        "/_gate/login",
        data={"csrf_token": form, "user": "alice", "password": "SECRETWRONGPW1"},
    )
    login(client, "alice")
    cookie = client.get_cookie("static_gate")
    assert cookie is not None
    client.get("/report.html?token=SECRETQUERY&password=SECRETPW2")
    client.get("/staff/grades.html?session=SECRETQUERY")
    logout(client)

    text = path.read_text()
    secrets = ["SECRET", PASSWORDS["alice"], cookie.value, form, "token=", "?"]
    assert [secret for secret in secrets if secret in text] == []
    assert len(read_lines(path)) >= 5


def test_gate_hashes_addresses_when_asked(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> None:
    gate = make_gate(trail={"file": "trail.jsonl", "hash_addresses": True})
    try:
        signed_in(gate, "alice", REMOTE_ADDR="203.0.113.7").get("/report.html")
    finally:
        gate.trail.close()

    clients = {r["client"] for r in read_lines(tmp_path / "trail.jsonl")}
    assert len(clients) == 1
    assert clients.pop().startswith("h:")
    assert "203.0.113.7" not in (tmp_path / "trail.jsonl").read_text()


def test_audit_path_shows_who_read_what(
    trail_gate: tuple[Gate, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's test: ``static-gate audit --path /staff/``."""
    gate, _ = trail_gate
    signed_in(gate, "alice", REMOTE_ADDR="203.0.113.7").get("/staff/grades.html")
    signed_in(gate, "bob", REMOTE_ADDR="198.51.100.4").get("/staff/grades.html")
    signed_in(gate, "carol").get("/report.html")

    assert (
        main(["audit", "--config", str(tmp_path / "gate.toml"), "--path", "/staff/"])
        == 0
    )

    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[2:] for row in rows] == [
        ["alice", "203.0.113.7", "GET", "200", "allow", "/staff/grades.html"],
        ["bob", "198.51.100.4", "GET", "403", "forbid", "/staff/grades.html"],
    ]
