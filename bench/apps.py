"""WSGI applications the benchmarks compare the gate with.

``whitenoise_app`` serves the folder named by ``BENCH_SITE`` with WhiteNoise
and no gate at all: the baseline for serving a folder from Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from whitenoise import WhiteNoise


def _not_found(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


whitenoise_app = WhiteNoise(_not_found, root=os.environ.get("BENCH_SITE", "."))
