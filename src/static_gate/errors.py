"""The exceptions static-gate raises to its callers."""

from __future__ import annotations


class StaticGateError(Exception):
    """Base class for every error static-gate reports to an administrator.

    The message is a complete sentence meant to be shown as it is, on one
    line, without a traceback.
    """


class ConfigError(StaticGateError):
    """The configuration, the secret or the users file cannot be used.

    Raised while loading, never while serving a request.  When several
    problems are found they are all listed, one per line.
    """

    def __init__(self, problems: str | list[str]) -> None:
        if isinstance(problems, str):
            problems = [problems]

        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class UsageError(StaticGateError):
    """A command was called with arguments that cannot work."""
