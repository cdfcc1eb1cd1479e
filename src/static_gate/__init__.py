"""static-gate: a login page, signed sessions and path rules for static files."""

from __future__ import annotations

from .config import Config, load_config
from .errors import ConfigError, StaticGateError
from .gate import SHARE_KEY, Gate
from .reload import ReloadingGate
from .signed_in import GROUPS_KEY, USER_KEY

__all__ = [
    "GROUPS_KEY",
    "SHARE_KEY",
    "USER_KEY",
    "Config",
    "ConfigError",
    "Gate",
    "ReloadingGate",
    "StaticGateError",
    "load_config",
]
