"""A ready WSGI application for servers: ``static_gate.wsgi:application``.

The configuration file is named by the ``STATIC_GATE_CONFIG`` environment
variable.  Importing this module loads it, so a broken configuration stops
the server at start-up instead of failing the first request.  Later changes
to the file take effect within seconds (see :mod:`static_gate.reload`).
"""

from __future__ import annotations

import os

from .config import CONFIG_ENV
from .errors import ConfigError
from .reload import ReloadingGate

_path = os.environ.get(CONFIG_ENV)
if not _path:
    raise ConfigError(
        f"environment variable {CONFIG_ENV} is not set; "
        "set it to the path of the configuration file."
    )

application = ReloadingGate(_path)
