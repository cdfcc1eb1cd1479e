"""The configuration file is followed while serving, without a restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST_HASHER, BufferedClient, FakeClock, render_toml, signed_in
from static_gate import ReloadingGate
from static_gate.reload import CHECK_INTERVAL

RULES: list[dict[str, Any]] = [{"path": "/public/", "allow": "anyone"}]


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def reloading(
    write_config: Callable[..., Path], clock: FakeClock, monotonic: Monotonic
) -> ReloadingGate:
    path = write_config(rules=RULES)
    return ReloadingGate(path, clock=monotonic, hasher=FAST_HASHER)


def rewrite(path: Path, **changes: Any) -> None:
    """Rewrite the configuration as an editor would: a new file in place."""
    text = path.read_text(encoding="utf-8")
    for old, new in changes.items():
        text = text.replace(old, new)
    replacement = path.with_name("gate.toml.new")
    replacement.write_text(text, encoding="utf-8")
    replacement.replace(path)


def close_report(path: Path) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(
            render_toml({"rules": [{"path": "/report.html", "allow": "nobody"}]})
        )


def test_a_valid_change_takes_effect_after_the_interval(
    reloading: ReloadingGate, monotonic: Monotonic
) -> None:
    client = signed_in(reloading.current)
    client.application = reloading
    assert client.get("/report.html").status_code == 200

    close_report(reloading.path)
    assert client.get("/report.html").status_code == 200  # not looked yet

    monotonic.now += CHECK_INTERVAL
    assert client.get("/report.html").status_code == 403


def test_a_broken_change_keeps_the_last_good_configuration(
    reloading: ReloadingGate, monotonic: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(reloading.current)
    client.application = reloading
    good = reloading.current

    rewrite(reloading.path, **{"[session]": '[session]\nlifetime = "forever"'})
    monotonic.now += CHECK_INTERVAL
    with caplog.at_level(logging.ERROR, logger="static_gate"):
        assert client.get("/report.html").status_code == 200

    assert reloading.current is good
    [record] = [r for r in caplog.records if r.name == "static_gate"]
    assert "configuration not reloaded" in record.getMessage()
    assert "[session] lifetime" in record.getMessage()
    assert "\n" not in record.getMessage()

    rewrite(reloading.path, **{'lifetime = "forever"': 'lifetime = "9h"'})
    close_report(reloading.path)
    monotonic.now += CHECK_INTERVAL
    assert client.get("/report.html").status_code == 403
    assert reloading.current.config.session.lifetime == 9 * 3600


def test_sessions_survive_a_reload(
    reloading: ReloadingGate, monotonic: Monotonic
) -> None:
    """The store and the keys carry over, so nobody is signed out."""
    client = signed_in(reloading.current)
    client.application = reloading
    store = reloading.current.store

    rewrite(reloading.path, **{"[pages]": '[pages]\ntitle = "Reports"'})
    close_report(reloading.path)
    monotonic.now += CHECK_INTERVAL

    assert client.get("/public/index.html").status_code == 200
    assert client.get("/_gate/account").status_code == 200
    assert reloading.current.store is store


def test_a_new_store_is_opened_when_the_setting_changes(
    reloading: ReloadingGate, monotonic: Monotonic
) -> None:
    old = reloading.current.store
    with reloading.path.open("a", encoding="utf-8") as file:
        file.write('[state]\nstore = "memory"\n')

    monotonic.now += CHECK_INTERVAL
    assert BufferedClient(reloading).get("/public/index.html").status_code == 200

    assert reloading.current.store is not old
    assert "memory" in reloading.current.store.description


def test_a_removed_file_changes_nothing(
    reloading: ReloadingGate, monotonic: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    good = reloading.current
    reloading.path.unlink()
    monotonic.now += CHECK_INTERVAL

    with caplog.at_level(logging.ERROR, logger="static_gate"):
        response = BufferedClient(reloading).get("/public/index.html")

    assert response.status_code == 200
    assert reloading.current is good
    assert "cannot read the configuration file" in caplog.text
