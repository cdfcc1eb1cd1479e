"""Share links at the gate: opening one, what it opens, and how it ends."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from conftest import (
    FAST_HASHER,
    GROUPS,
    KEY,
    PASSWORDS,
    BufferedClient,
    EnvironClient,
    FakeClock,
    form_token,
    set_cookies,
    signed_in,
)
from static_gate import SHARE_KEY, USER_KEY, Gate
from static_gate.credentials import RELOAD_INTERVAL, Account, format_users
from static_gate.keys import SecretKey
from static_gate.shares import SHARE_COOKIE_LIFETIME, make_share, make_token
from static_gate.stores import ShareRecord

AUDIT = "static_gate.audit"
KEYS = [SecretKey(KEY.encode())]
SHARE_COOKIE = "static_gate_share"
SESSION_COOKIE = "static_gate"
DAY = 86400
PEER = "192.0.2.10"
RULES = [
    {"path": "/public/", "allow": "anyone"},
    {"path": "/staff/", "groups": ["staff"]},
    {"path": "/staff/closed/", "allow": "nobody"},
    {"path": "/admins/", "users": ["carol"]},
]

MakeGate = Callable[..., Gate]


@pytest.fixture
def site(site: Path) -> Path:
    """The usual site, with more inside /staff/ and a /staffroom/ beside it."""
    for name in ("staff/closed/x.html", "staff/sub/y.html", "staff/two.html"):
        (site / name).parent.mkdir(exist_ok=True)
        (site / name).write_text(name, encoding="utf-8")

    (site / "staffroom").mkdir()
    (site / "staffroom" / "z.html").write_text("staffroom", encoding="utf-8")
    return site


@pytest.fixture
def make_share_gate(make_gate: MakeGate) -> MakeGate:
    def make(**tables: Any) -> Gate:
        tables.setdefault("rules", RULES)
        tables["share"] = {"creators": ["staff"], **tables.get("share", {})}
        return make_gate(**tables)

    return make


@pytest.fixture
def gate(make_share_gate: MakeGate) -> Gate:
    """A gate on the default SQLite store, with ``staff`` as link creators."""
    return make_share_gate()


def browser(gate: Gate, **environ: Any) -> EnvironClient:
    return EnvironClient(gate, **{"REMOTE_ADDR": PEER, **environ})


def add(
    gate: Gate,
    path: str,
    by: str = "@root",
    uses: int | None = None,
    lifetime: int = DAY,
) -> tuple[ShareRecord, str]:
    """Store a link as ``static-gate share`` does; return it and its address."""
    record = make_share(path, by, gate.clock(), lifetime, uses)
    gate.store.add_share(record)
    return record, "/_gate/share/" + make_token(KEYS, record.id)


def open_link(client: BufferedClient, url: str) -> TestResponse:
    """Look at the link's page, then press its button."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    assert '<button type="submit">Open</button>' in page.get_data(as_text=True)
    return client.post(url)


def statuses(client: BufferedClient, paths: Iterable[str]) -> dict[str, int]:
    return {path: client.get(path).status_code for path in paths}


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == AUDIT]


def clears_share_cookie(response: TestResponse, path: str) -> bool:
    value, attributes = set_cookies(response).get(SHARE_COOKIE, ("x", {}))
    return value == "" and attributes == {
        "expires": attributes.get("expires", ""),
        "max-age": "0",
        "path": path,
        "httponly": "",
        "samesite": "Lax",
    }


def rewrite_users(tmp_path: Path, groups: dict[str, set[str]]) -> None:
    """Write users.txt with these users and groups only."""
    accounts = {
        name: Account(name, FAST_HASHER.hash(PASSWORDS[name]), frozenset(group_set))
        for name, group_set in groups.items()
    }
    (tmp_path / "users.txt").write_text(format_users(accounts), encoding="utf-8")


# -- what a link opens -----------------------------------------------------------


def test_file_link_opens_that_file_and_nothing_else(gate: Gate) -> None:
    _, url = add(gate, "/staff/grades.html")
    client = browser(gate)

    assert open_link(client, url).headers["Location"] == "/staff/grades.html"

    assert statuses(
        client,
        [
            "/staff/grades.html",
            "/staff/two.html",
            "/staff/",
            "/staff/sub/y.html",
            "/report.html",
            "/_gate/account",
        ],
    ) == {
        "/staff/grades.html": 200,
        "/staff/two.html": 303,
        "/staff/": 303,
        "/staff/sub/y.html": 303,
        "/report.html": 303,
        "/_gate/account": 303,
    }


def test_folder_link_opens_the_folder_and_what_is_under_it(gate: Gate) -> None:
    _, url = add(gate, "/staff/")
    client = browser(gate)

    assert open_link(client, url).headers["Location"] == "/staff/"

    assert statuses(
        client,
        [
            "/staff/grades.html",
            "/staff/sub/y.html",
            "/staffroom/z.html",
            "/report.html",
            "/admins/keys.html",
        ],
    ) == {
        "/staff/grades.html": 200,
        "/staff/sub/y.html": 200,
        "/staffroom/z.html": 303,
        "/report.html": 303,
        "/admins/keys.html": 303,
    }


def test_cookie_sent_beyond_its_path_opens_nothing_there(gate: Gate) -> None:
    """The gate checks what the cookie covers, whatever the browser sends."""
    _, url = add(gate, "/staff/")
    opened = open_link(browser(gate), url)
    value = set_cookies(opened)[SHARE_COOKIE][0]
    stranger = BufferedClient(gate, use_cookies=False)

    for path, status in [("/staff/grades.html", 200), ("/staffroom/z.html", 303)]:
        response = stranger.get(path, headers={"Cookie": f"{SHARE_COOKIE}={value}"})
        assert response.status_code == status, path


def test_nobody_stays_closed_inside_a_shared_folder(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    record, url = add(gate, "/staff/")
    client = browser(gate)
    open_link(client, url)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = client.get("/staff/closed/x.html")

    assert response.status_code == 403
    assert (
        logging.WARNING,
        f"access-denied share={record.id} client={PEER} path='/staff/closed/x.html' "
        "rule='/staff/closed/' reason=closed to everyone",
    ) in audit_lines(caplog)


def test_listing_of_a_shared_folder_shows_what_the_link_opens(
    make_share_gate: MakeGate,
) -> None:
    gate = make_share_gate(static={"directory_listing": True})
    _, url = add(gate, "/staff/")
    client = browser(gate)
    open_link(client, url)

    page = client.get("/staff/").get_data(as_text=True)

    assert re.findall(r'<a href="\./([^"]+)"', page) == [
        "grades.html",
        "sub/",
        "two.html",
    ]


def test_link_only_reads(gate: Gate) -> None:
    _, url = add(gate, "/report.html")
    client = browser(gate)
    open_link(client, url)

    assert client.head("/report.html").status_code == 200
    posted = client.post("/report.html")
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith("/_gate/login?next=")


def test_signed_in_user_keeps_their_rights_and_gains_the_link(gate: Gate) -> None:
    _, url = add(gate, "/admins/keys.html")
    bob = signed_in(gate, "bob")
    assert bob.get("/admins/keys.html").status_code == 403

    opened = open_link(bob, url)

    assert SESSION_COOKIE not in set_cookies(opened)
    assert bob.get("/admins/keys.html").status_code == 200
    assert bob.get("/staff/grades.html").status_code == 403
    assert bob.get("/_gate/account").status_code == 200


def test_wrapped_app_sees_the_link_id_and_no_user(make_share_gate: MakeGate) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    gate = make_share_gate(app=app)
    record, url = add(gate, "/report.html")
    client = browser(gate)
    open_link(client, url)

    assert client.get("/report.html").status_code == 200
    assert seen[SHARE_KEY] == record.id
    assert "REMOTE_USER" not in seen
    assert USER_KEY not in seen


def test_auth_endpoint_honours_a_share_cookie(make_share_gate: MakeGate) -> None:
    """nginx passes on the original request's cookies with its subrequest."""
    gate = make_share_gate(proxy={"trusted": ["127.0.0.1"]})
    record, url = add(gate, "/report.html")
    cookie = set_cookies(open_link(browser(gate), url))[SHARE_COOKIE][0]
    proxy = BufferedClient(gate, use_cookies=False)

    def ask(uri: str) -> int:
        headers = {"X-Original-URI": uri, "Cookie": f"{SHARE_COOKIE}={cookie}"}
        environ = {"REMOTE_ADDR": "127.0.0.1"}
        answer = proxy.get("/_gate/auth", headers=headers, environ_overrides=environ)
        return answer.status_code

    assert ask("/report.html") == 204
    assert ask("/staff/grades.html") == 401

    # nginx then hands the request to the gate, which answers 410 itself.
    gate.store.revoke_share(record.id)
    assert ask("/report.html") == 401


# -- opening a link --------------------------------------------------------------


def test_looking_spends_nothing_and_opening_spends_one_use(
    gate: Gate, clock: FakeClock
) -> None:
    record, url = add(gate, "/report.html", uses=1)
    first = browser(gate)

    for _ in range(3):
        assert first.get(url).status_code == 200
    assert gate.store.get_share(record.id, clock()) == record

    assert open_link(first, url).status_code == 303
    assert first.get("/report.html").status_code == 200

    second = browser(gate)
    assert second.get(url).status_code == 410
    assert second.post(url).status_code == 410
    assert second.get("/report.html").status_code == 303


def test_opening_moves_the_token_into_a_cookie_for_the_path(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    record, url = add(gate, "/staff/", uses=3)
    token = url.rsplit("/", 1)[1]
    client = browser(gate)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = open_link(client, url)

    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/"
    assert token not in response.headers["Location"]
    cookies = set_cookies(response)
    assert list(cookies) == [SHARE_COOKIE], "no session is created"
    value, attributes = cookies[SHARE_COOKIE]
    assert token not in value
    assert attributes == {
        "expires": attributes["expires"],
        "max-age": str(SHARE_COOKIE_LIFETIME),
        "path": "/staff",
        "httponly": "",
        "samesite": "Lax",
    }
    assert (
        logging.INFO,
        f"share-opened id={record.id} path='/staff/' client={PEER} uses_left=2",
    ) in audit_lines(caplog)


def test_cookie_is_secure_over_https(gate: Gate) -> None:
    _, url = add(gate, "/report.html")
    client = browser(gate, **{"wsgi.url_scheme": "https"})

    cookies = set_cookies(open_link(client, url))

    assert "secure" in cookies["__Secure-" + SHARE_COOKIE][1]


def test_share_pages_send_no_referrer(gate: Gate) -> None:
    record, url = add(gate, "/report.html", uses=1)
    client = browser(gate)
    answers = [client.get(url), client.post(url), client.get("/report.html")]
    answers += [client.get(url), client.get(url[:-2])]

    assert [a.status_code for a in answers] == [200, 303, 200, 410, 404]
    for answer in answers:
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize("method", ["get", "post"])
def test_token_that_is_not_ours_gets_404(
    gate: Gate, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    _, url = add(gate, "/report.html")
    client = browser(gate)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = getattr(client, method)(url[:-2])

    assert response.status_code == 404
    assert "copied whole" in response.get_data(as_text=True)
    assert SHARE_COOKIE not in set_cookies(response)
    assert audit_lines(caplog) == [
        (logging.WARNING, f"share-refused client={PEER} reason=bad signature or format")
    ]


def test_link_page_takes_no_other_method(gate: Gate) -> None:
    _, url = add(gate, "/report.html")

    response = browser(gate).put(url)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"


def test_link_page_escapes_the_path(gate: Gate, site: Path) -> None:
    (site / "<b>.html").write_text("odd", encoding="utf-8")
    _, url = add(gate, "/<b>.html")

    page = browser(gate).get(url).get_data(as_text=True)

    assert "<b>.html" not in page
    assert "&lt;b&gt;.html" in page


# -- how a link ends -------------------------------------------------------------


def test_revocation_in_another_process_ends_the_link_at_once(
    gate: Gate, make_share_gate: MakeGate, caplog: pytest.LogCaptureFixture
) -> None:
    """Two gates on one SQLite file act as two worker processes."""
    other = make_share_gate()
    assert other.store is not gate.store
    record, url = add(gate, "/report.html")
    client = browser(gate)
    open_link(client, url)
    assert client.get("/report.html").status_code == 200

    assert other.store.revoke_share(record.id)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        ended = client.get("/report.html")

    assert ended.status_code == 410
    assert "not valid any more" in ended.get_data(as_text=True)
    assert clears_share_cookie(ended, "/report.html")
    assert (
        logging.INFO,
        f"share-ended id={record.id} client={PEER} path='/report.html' "
        "reason=revoked or expired",
    ) in audit_lines(caplog)
    assert client.get("/report.html").status_code == 303
    assert client.get(url).status_code == 410


def test_expired_link_opens_nothing(gate: Gate, clock: FakeClock) -> None:
    _, url = add(gate, "/report.html", lifetime=3600)
    client = browser(gate)
    open_link(client, url)
    assert client.get("/report.html").status_code == 200

    clock.advance(3600)

    assert client.get("/report.html").status_code == 303
    assert client.get(url).status_code == 410
    assert client.post(url).status_code == 410


def test_cookie_ends_before_a_long_link_does(gate: Gate, clock: FakeClock) -> None:
    """Reading on after the cookie's hours means opening again: one more use."""
    record, url = add(gate, "/report.html", uses=2)
    client = browser(gate)
    open_link(client, url)

    clock.advance(SHARE_COOKIE_LIFETIME)
    assert client.get("/report.html").status_code == 303

    open_link(client, url)
    assert client.get("/report.html").status_code == 200
    share = gate.store.get_share(record.id, clock())
    assert share is not None and share.uses_left == 0


def test_link_of_a_removed_user_opens_nothing(
    gate: Gate, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record, url = add(gate, "/staff/", by="alice")
    client = browser(gate)
    open_link(client, url)
    assert client.get("/staff/grades.html").status_code == 200

    rewrite_users(tmp_path, {"bob": GROUPS["bob"], "carol": GROUPS["carol"]})
    clock.advance(RELOAD_INTERVAL)
    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = client.get("/staff/grades.html")

    assert response.status_code == 403
    assert (
        logging.WARNING,
        f"access-denied share={record.id} client={PEER} path='/staff/grades.html' "
        "rule='/staff/' reason=link's creator removed",
    ) in audit_lines(caplog)


def test_link_narrows_with_its_creators_groups(
    gate: Gate, clock: FakeClock, tmp_path: Path
) -> None:
    _, url = add(gate, "/staff/", by="carol")
    client = browser(gate)
    open_link(client, url)
    assert client.get("/staff/grades.html").status_code == 200

    rewrite_users(tmp_path, {"alice": {"staff"}, "carol": {"admins"}})
    clock.advance(RELOAD_INTERVAL)

    assert client.get("/staff/grades.html").status_code == 403


def test_users_link_reaches_no_further_than_its_creator(gate: Gate) -> None:
    """Even a link made straight in the store, past the page's checks."""
    _, url = add(gate, "/", by="alice")
    client = browser(gate)
    open_link(client, url)

    assert statuses(client, ["/report.html", "/staff/grades.html"]) == {
        "/report.html": 200,
        "/staff/grades.html": 200,
    }
    assert client.get("/admins/keys.html").status_code == 403
    assert client.get("/staff/closed/x.html").status_code == 403


# -- the store out of reach ------------------------------------------------------


@pytest.fixture
def break_store(tmp_path: Path) -> Iterator[Callable[[Gate], None]]:
    """Return a function that replaces a gate's SQLite file by a folder."""
    aside = tmp_path / "aside"
    broken: list[Path] = []

    def start(gate: Gate) -> None:
        path: Path = gate.store.path  # type: ignore[attr-defined]
        # An open connection would go on with the moved file: close it, as a
        # worker thread that connects during the outage.
        gate.store.close()
        aside.mkdir()
        for part in path.parent.glob(path.name + "*"):
            part.rename(aside / part.name)
        path.mkdir()
        broken.append(path)

    yield start
    for path in broken:
        path.rmdir()
        for part in aside.iterdir():
            part.rename(path.parent / part.name)


@pytest.mark.parametrize("read_during_outage", [False, True])
def test_share_cookie_is_refused_while_the_store_is_out_of_reach(
    make_share_gate: MakeGate,
    break_store: Callable[[Gate], None],
    caplog: pytest.LogCaptureFixture,
    read_during_outage: bool,
) -> None:
    """Revocation is the one control over links: no reading without it."""
    gate = make_share_gate(state={"read_during_outage": read_during_outage})
    _, url = add(gate, "/report.html")
    client = browser(gate)
    open_link(client, url)
    break_store(gate)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        response = client.get("/report.html")

    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert SHARE_COOKIE not in set_cookies(response), "the cookie must outlive it"
    assert (
        logging.WARNING,
        f"store-unavailable client={PEER} path='/report.html' reason=share not checked",
    ) in audit_lines(caplog)
    assert client.get("/public/index.html").status_code == 200


def test_link_cannot_be_opened_while_the_store_is_out_of_reach(
    gate: Gate, break_store: Callable[[Gate], None]
) -> None:
    _, url = add(gate, "/report.html")
    client = browser(gate)
    break_store(gate)

    assert client.get(url).status_code == 503
    assert client.post(url).status_code == 503


# -- the page that makes links ---------------------------------------------------


def make_link(client: BufferedClient, **fields: str) -> TestResponse:
    page = client.get("/_gate/shares")
    assert page.status_code == 200
    data = {"csrf_token": form_token(page), "expires": "7d", **fields}
    return client.post("/_gate/shares", data=data)


def made_url(response: TestResponse) -> str:
    text = response.get_data(as_text=True)
    match = re.search(r'<input readonly value="([^"]+)"', text)
    assert match, "the page shows no link"
    return html.unescape(match.group(1))


def test_creator_makes_a_link_that_opens_its_path(
    gate: Gate, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    alice = signed_in(gate, "alice", REMOTE_ADDR=PEER)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        made = make_link(alice, path="/staff/", uses="1", note="for Dana")

    assert made.status_code == 200
    url = made_url(made)
    assert url.startswith("http://localhost/_gate/share/")
    [record] = gate.store.list_shares(clock())
    assert (record.path, record.created_by, record.uses_left, record.note) == (
        "/staff/",
        "alice",
        1,
        "for Dana",
    )
    assert record.expires == int(clock()) + 7 * DAY
    assert (
        logging.INFO,
        f"share-made id={record.id} path='/staff/' user='alice' client={PEER} "
        f"expires={record.expires} uses=1",
    ) in audit_lines(caplog)

    stranger = browser(gate)
    open_link(stranger, url.removeprefix("http://localhost"))
    assert stranger.get("/staff/grades.html").status_code == 200
    assert stranger.get("/report.html").status_code == 303


def test_made_link_starts_with_base_url(make_share_gate: MakeGate) -> None:
    gate = make_share_gate(share={"base_url": "https://example.org/reports/"})

    made = make_link(signed_in(gate, "alice"), path="/report.html")

    assert made_url(made).startswith("https://example.org/reports/_gate/share/")


def test_page_needs_a_sign_in(gate: Gate) -> None:
    response = browser(gate).get("/_gate/shares")

    assert response.status_code == 303
    assert response.headers["Location"] == "/_gate/login?next=/_gate/shares"


def test_page_needs_a_creators_group(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    bob = signed_in(gate, "bob", REMOTE_ADDR=PEER)

    with caplog.at_level(logging.INFO, logger=AUDIT):
        assert bob.get("/_gate/shares").status_code == 403
    assert bob.post("/_gate/shares", data={"path": "/report.html"}).status_code == 403

    assert (
        logging.WARNING,
        f"access-denied user='bob' client={PEER} path='/_gate/shares' "
        "reason=not in [share] creators",
    ) in audit_lines(caplog)
    assert gate.store.list_shares(gate.clock()) == []


def test_nobody_makes_links_on_the_page_by_default(make_gate: MakeGate) -> None:
    gate = make_gate(rules=RULES)

    assert signed_in(gate, "carol").get("/_gate/shares").status_code == 403


def test_page_form_needs_its_token(gate: Gate) -> None:
    alice = signed_in(gate, "alice")
    carol = signed_in(gate, "carol")
    carols_token = form_token(carol.get("/_gate/shares"))

    for token in ["", "forged", carols_token]:
        data = {"csrf_token": token, "path": "/staff/", "expires": "7d"}
        response = alice.post("/_gate/shares", data=data)
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)

    assert gate.store.list_shares(gate.clock()) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "/admins/keys.html"}, "You may not read '/admins/keys.html'"),
        ({"path": "/admins/nothing.html"}, "You may not read '/admins/nothing.html'"),
        ({"path": "/staff/closed/x.html"}, "You may not read"),
        ({"path": "/staff/nothing.html"}, "does not exist under the served folder"),
        ({"path": "/staff"}, "is a folder; write '/staff/'"),
        ({"path": "/"}, "The whole site cannot be shared"),
        ({"path": "/_gate/login"}, "one of the gate's own pages"),
        ({"path": "/staff/../report.html"}, "is not in canonical form"),
        ({"path": "/report.html", "expires": "31d"}, "30d at most"),
        ({"path": "/report.html", "expires": "soon"}, "must be a duration"),
        ({"path": "/report.html", "uses": "0"}, "must be 1 or more"),
        ({"path": "/report.html", "uses": "many"}, "must be a whole number"),
        ({"path": "/report.html", "note": "two\nlines"}, "one line of at most"),
    ],
)
def test_page_refuses_what_cannot_be_shared(
    gate: Gate, fields: dict[str, str], message: str
) -> None:
    alice = signed_in(gate, "alice")

    response = make_link(alice, **fields)

    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message.replace("'", "&#x27;") in text
    assert f'name="path" value="{html.escape(fields["path"])}"' in text
    assert gate.store.list_shares(gate.clock()) == []


def test_page_escapes_what_was_sent(gate: Gate) -> None:
    response = make_link(signed_in(gate, "alice"), path='/"><script>x</script>')

    text = response.get_data(as_text=True)
    assert "<script>" not in text
    assert 'value="/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in text


def test_page_cannot_make_a_link_while_the_store_is_out_of_reach(
    make_share_gate: MakeGate, break_store: Callable[[Gate], None]
) -> None:
    """With reading on during outages, the session passes but the link fails."""
    gate = make_share_gate(state={"read_during_outage": True})
    alice = signed_in(gate, "alice")
    page = alice.get("/_gate/shares")
    break_store(gate)

    data = {"csrf_token": form_token(page), "path": "/report.html", "expires": "1d"}
    response = alice.post("/_gate/shares", data=data)

    assert response.status_code == 503
