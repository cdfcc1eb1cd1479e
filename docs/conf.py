"""Sphinx configuration for the static-gate documentation.

Build with warnings as errors, as CI does:

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

from importlib import metadata

project = "static-gate"
author = "static-gate developers"
copyright = "static-gate developers"
# Sphinx reads every global name here as a setting, so the function is not
# imported by name: a global called "version" would become the version.
release = metadata.version("static-gate")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

# No intersphinx: CI builds without network access, so the inventories of
# Python, werkzeug, itsdangerous and argon2-cffi cannot be fetched.

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# api.md writes its summary as a definition list (a term, then ": ...").
myst_enable_extensions = ["colon_fence", "deflist"]
# Anchors for "page.md#heading" links, down to ### (the configuration keys).
myst_heading_anchors = 3

# Type hints go beside the described parameters, not into the signatures:
# they name classes from werkzeug, argon2-cffi and typeshed's WSGI stubs
# that cannot be linked without intersphinx, and Config's signature would
# spell out the default of every table.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
# Show defaults as written ("time.time"), not as their repr.
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"

html_theme = "furo"
html_title = "static-gate"
