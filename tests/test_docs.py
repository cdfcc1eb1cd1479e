"""The documentation describes exactly the configuration the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from static_gate.config import KEYS

DOCS = Path(__file__).parent.parent / "docs"


def documented_keys() -> dict[str, set[str]]:
    """Return the ``### `key``` headings of docs/configuration.md by table."""
    tables: dict[str, set[str]] = {}
    table = None
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## `\[\[?(\w+)\]\]?`", line)
        if heading:
            table = heading.group(1)
            tables[table] = set()
            continue

        key = re.fullmatch(r"### `(\w+)`", line)
        if key and table is not None:
            tables[table].add(key.group(1))

    return tables


def test_every_table_is_documented() -> None:
    assert set(documented_keys()) == set(KEYS)


def test_every_key_is_documented_and_nothing_else() -> None:
    documented = documented_keys()
    for table, keys in KEYS.items():
        assert documented[table] == set(keys), f"[{table}] differs from the docs"


def test_docs_links_point_to_existing_pages() -> None:
    """Relative links between the docs pages and from the README resolve."""
    pages = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", text):
            assert (page.parent / target).is_file(), f"{page.name} links to {target}"
