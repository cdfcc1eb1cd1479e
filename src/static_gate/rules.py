"""Who may read which path: path-prefix rules and the decision they give.

A rule whose path ends with ``/`` covers that folder and everything under
it; any other rule covers exactly one path.  The most specific rule wins,
and a path that no rule covers needs a signed-in user.  Rules are matched
against the canonical path from :mod:`static_gate.paths`, the same string
that is later served or handed to the wrapped application.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

#: Anyone may read, signed in or not.
ANYONE = "anyone"
#: Any signed-in user may read.
SIGNED_IN = "signed-in"
#: Nobody may read, not even signed-in users.
NOBODY = "nobody"
#: Only the users and groups the rule lists may read.
LISTED = "listed"

ALLOW_VALUES = (ANYONE, SIGNED_IN, NOBODY)

# Outcomes of a decision.
ALLOW = "allow"
LOGIN = "login"
FORBID = "forbid"


@dataclass(frozen=True)
class Rule:
    """One ``[[rules]]`` entry of the configuration."""

    path: str
    allow: str = SIGNED_IN
    users: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)
    #: ``Cache-Control`` for responses under a public rule; ``None`` keeps
    #: the default ``private, no-store``.
    cache_control: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.path.endswith("/")

    def describe(self) -> str:
        """Say in words who this rule lets in."""
        if self.allow == LISTED:
            names = [f"user {name}" for name in sorted(self.users)]
            names += [f"group {name}" for name in sorted(self.groups)]
            return "only " + ", ".join(names)

        return {ANYONE: "anyone", SIGNED_IN: "any signed-in user"}.get(
            self.allow, "nobody"
        )


#: What applies where no configured rule matches: deny unless signed in.
DEFAULT_RULE = Rule(path="/", allow=SIGNED_IN)


@dataclass(frozen=True)
class Decision:
    """The answer for one path and one visitor."""

    outcome: str
    rule: Rule
    #: True when no configured rule matched and :data:`DEFAULT_RULE` applied.
    default: bool
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW


class RuleSet:
    """Rules compiled for fast lookups: one dictionary probe per path level.

    :param rules: the configured rules; their paths must be canonical.
    :param case_sensitive: ``False`` where the served file system ignores
        case, so that ``/Staff/`` and ``/staff/`` meet the same rule.
    """

    def __init__(self, rules: Iterable[Rule], case_sensitive: bool = True) -> None:
        self.rules = tuple(sorted(rules, key=lambda rule: rule.path))
        self.case_sensitive = case_sensitive
        self._by_path = {self._key(rule.path): rule for rule in self.rules}

    def _key(self, path: str) -> str:
        # lower(), not casefold(): file systems fold "ß" to itself, not "ss".
        return path if self.case_sensitive else path.lower()

    def match(self, path: str) -> Rule | None:
        """Return the most specific configured rule for *path*, if any."""
        key = self._key(path)
        by_path = self._by_path
        rule = by_path.get(key)
        if rule is not None:
            return rule

        # "/reports" is the folder "/reports/" before its redirect.
        if not key.endswith("/"):
            rule = by_path.get(key + "/")
            if rule is not None:
                return rule

        end = len(key) - 1
        while end >= 0:
            end = key.rfind("/", 0, end)
            if end < 0:
                break

            rule = by_path.get(key[: end + 1])
            if rule is not None:
                return rule

        return None

    def decide(
        self, path: str, user: str | None, groups: frozenset[str] = frozenset()
    ) -> Decision:
        """Decide whether *user* (``None`` when not signed in) may read *path*."""
        rule = self.match(path)
        default = rule is None
        if rule is None:
            rule = DEFAULT_RULE

        outcome, reason = _judge(rule, user, groups)
        return Decision(outcome, rule, default, reason)


def _judge(rule: Rule, user: str | None, groups: frozenset[str]) -> tuple[str, str]:
    if rule.allow == ANYONE:
        return ALLOW, "public path"

    if rule.allow == NOBODY:
        return FORBID, "closed to everyone"

    if user is None:
        return LOGIN, "sign-in required"

    if rule.allow == SIGNED_IN:
        return ALLOW, "signed in"

    if user in rule.users:
        return ALLOW, "user listed"

    if not rule.groups.isdisjoint(groups):
        return ALLOW, "group listed"

    return FORBID, "user not listed"
