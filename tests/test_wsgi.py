"""``static_gate.wsgi:application``, built from ``STATIC_GATE_CONFIG``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import static_gate
from conftest import BufferedClient
from static_gate import ConfigError, Gate, ReloadingGate
from static_gate.config import CONFIG_ENV
from static_gate.keys import SECRET_ENV

MODULE = "static_gate.wsgi"


def forget_module() -> None:
    sys.modules.pop(MODULE, None)
    if hasattr(static_gate, "wsgi"):
        delattr(static_gate, "wsgi")


@pytest.fixture
def import_wsgi(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], ModuleType]]:
    """Import the module afresh, and forget it again after the test."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    forget_module()
    try:
        yield lambda: importlib.import_module(MODULE)
    finally:
        forget_module()


def import_in_child(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import {MODULE}"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=environ,
        timeout=60,
    )


def environment_without_config() -> dict[str, str]:
    environ = dict(os.environ)
    environ.pop(CONFIG_ENV, None)
    environ.pop(SECRET_ENV, None)
    return environ


def test_import_without_the_variable_names_it() -> None:
    result = import_in_child(environment_without_config())

    assert result.returncode != 0
    assert f"environment variable {CONFIG_ENV} is not set" in result.stderr


def test_import_with_an_empty_variable_names_it() -> None:
    result = import_in_child({**environment_without_config(), CONFIG_ENV: ""})

    assert result.returncode != 0
    assert f"{CONFIG_ENV} is not set" in result.stderr


def test_import_with_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    result = import_in_child({**environment_without_config(), CONFIG_ENV: str(missing)})

    assert result.returncode != 0
    assert f"{missing}: cannot read the configuration file" in result.stderr


def test_application_is_a_gate_over_the_config(
    import_wsgi: Callable[[], ModuleType],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(rules=[{"path": "/public/", "allow": "anyone"}])
    monkeypatch.setenv(CONFIG_ENV, str(config))

    application = import_wsgi().application

    assert isinstance(application, ReloadingGate)
    assert isinstance(application.current, Gate)
    assert application.current.config.source == config
    assert application.current.folder is not None


def test_application_serves_public_pages_and_guards_the_rest(
    import_wsgi: Callable[[], ModuleType],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(rules=[{"path": "/public/", "allow": "anyone"}])
    monkeypatch.setenv(CONFIG_ENV, str(config))
    client = BufferedClient(import_wsgi().application)

    public = client.get("/public/index.html")
    protected = client.get("/report.html")

    assert public.status_code == 200
    assert public.get_data(as_text=True) == "<p>public page</p>"
    assert protected.status_code == 303
    assert protected.headers["Location"] == "/_gate/login?next=%2Freport.html"


def test_import_with_a_broken_config_raises_config_error(
    import_wsgi: Callable[[], ModuleType],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(write_config(session={"lifetime": "soon"})))

    with pytest.raises(ConfigError, match=r"gate\.toml: \[session\] lifetime"):
        import_wsgi()
