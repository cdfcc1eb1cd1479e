"""Path-prefix rules: which rule applies to a path, and what it decides."""

from __future__ import annotations

import pytest

from static_gate.rules import (
    ALLOW,
    ANYONE,
    DEFAULT_RULE,
    FORBID,
    LISTED,
    LOGIN,
    NOBODY,
    SIGNED_IN,
    Rule,
    RuleSet,
)

RULES = RuleSet(
    [
        Rule("/public/", ANYONE),
        Rule("/public/drafts/", NOBODY),
        Rule("/public/drafts/ready.html", ANYONE),
        Rule("/staff/", LISTED, groups=frozenset({"staff"})),
        Rule("/staff/board/", LISTED, users=frozenset({"carol"})),
        Rule("/admins/", LISTED, users=frozenset({"carol"})),
        Rule("/robots.txt", ANYONE),
        Rule("/closed/", NOBODY),
    ]
)


@pytest.mark.parametrize(
    ("path", "rule_path"),
    [
        ("/public/", "/public/"),
        ("/public/index.html", "/public/"),
        ("/public/css/site.css", "/public/"),
        ("/public/drafts/", "/public/drafts/"),
        ("/public/drafts/a.html", "/public/drafts/"),
        ("/public/drafts/old/b.html", "/public/drafts/"),
        ("/public/drafts/ready.html", "/public/drafts/ready.html"),
        ("/staff/grades.html", "/staff/"),
        ("/staff/board/minutes.html", "/staff/board/"),
        ("/staff/boardroom.html", "/staff/"),
        ("/admins/keys.html", "/admins/"),
        ("/robots.txt", "/robots.txt"),
    ],
)
def test_longest_matching_prefix_wins(path: str, rule_path: str) -> None:
    rule = RULES.match(path)
    assert rule is not None
    assert rule.path == rule_path


@pytest.mark.parametrize("path", ["/staff", "/public/drafts", "/closed"])
def test_folder_rule_covers_the_folder_without_its_slash(path: str) -> None:
    rule = RULES.match(path)
    assert rule is not None
    assert rule.path == path + "/"


@pytest.mark.parametrize(
    "path",
    [
        "/staffroom/x",
        "/staffroom",
        "/staff.html",
        "/publicity/index.html",
        "/admins-old/keys.html",
        "/closedown",
        "/x/staff/grades.html",
    ],
)
def test_matching_respects_segment_boundaries(path: str) -> None:
    """ "/staff/" covers its folder only, not names that merely start alike."""
    assert RULES.match(path) is None


@pytest.mark.parametrize(
    "path", ["/robots.txt/", "/robots.txt/x", "/robots.txt.bak", "/robots.tx"]
)
def test_file_rule_covers_exactly_one_path(path: str) -> None:
    assert RULES.match(path) is None


@pytest.mark.parametrize("path", ["/", "/index.html", "/report.html", "/a/b/c.html"])
def test_default_rule_applies_when_nothing_matches(path: str) -> None:
    decision = RULES.decide(path, None)

    assert decision.default is True
    assert decision.rule == DEFAULT_RULE
    assert decision.rule.allow == SIGNED_IN
    assert decision.outcome == LOGIN
    assert RULES.decide(path, "bob").outcome == ALLOW


def test_matched_rule_is_not_the_default() -> None:
    decision = RULES.decide("/public/index.html", None)
    assert decision.default is False
    assert decision.rule.path == "/public/"


def test_root_rule_replaces_the_default() -> None:
    rules = RuleSet([Rule("/", ANYONE)])
    decision = rules.decide("/any/where.html", None)

    assert decision.default is False
    assert decision.outcome == ALLOW


@pytest.mark.parametrize(
    ("path", "user", "groups", "outcome"),
    [
        # anyone
        ("/public/a.html", None, frozenset(), ALLOW),
        ("/public/a.html", "bob", frozenset(), ALLOW),
        # signed-in (the default)
        ("/index.html", None, frozenset(), LOGIN),
        ("/index.html", "bob", frozenset(), ALLOW),
        # listed users
        ("/admins/keys.html", None, frozenset(), LOGIN),
        ("/admins/keys.html", "carol", frozenset(), ALLOW),
        ("/admins/keys.html", "alice", frozenset({"staff"}), FORBID),
        # listed groups
        ("/staff/grades.html", None, frozenset(), LOGIN),
        ("/staff/grades.html", "alice", frozenset({"staff"}), ALLOW),
        ("/staff/grades.html", "bob", frozenset(), FORBID),
        ("/staff/grades.html", "bob", frozenset({"other"}), FORBID),
        ("/staff/grades.html", "staff", frozenset(), FORBID),
        # the more specific listed rule replaces the group rule
        ("/staff/board/a.html", "alice", frozenset({"staff"}), FORBID),
        ("/staff/board/a.html", "carol", frozenset(), ALLOW),
        # nobody
        ("/closed/a.html", None, frozenset(), FORBID),
        ("/closed/a.html", "carol", frozenset({"staff", "admins"}), FORBID),
        ("/public/drafts/a.html", "carol", frozenset(), FORBID),
        ("/public/drafts/ready.html", None, frozenset(), ALLOW),
    ],
)
def test_decision_outcome(
    path: str, user: str | None, groups: frozenset[str], outcome: str
) -> None:
    decision = RULES.decide(path, user, groups)

    assert decision.outcome == outcome
    assert decision.allowed is (outcome == ALLOW)
    assert decision.reason


def test_user_and_group_lists_combine() -> None:
    rule = Rule("/x/", LISTED, users=frozenset({"bob"}), groups=frozenset({"staff"}))
    rules = RuleSet([rule])

    assert rules.decide("/x/a", "bob").outcome == ALLOW
    assert rules.decide("/x/a", "alice", frozenset({"staff"})).outcome == ALLOW
    assert rules.decide("/x/a", "dave", frozenset({"admins"})).outcome == FORBID


@pytest.mark.parametrize(
    "path", ["/STAFF/grades.html", "/Staff/grades.html", "/staff/GRADES.html", "/STAFF"]
)
def test_case_insensitive_rules_ignore_case(path: str) -> None:
    rules = RuleSet(RULES.rules, case_sensitive=False)

    rule = rules.match(path)
    assert rule is not None
    assert rule.path == "/staff/"
    assert rules.decide(path, "bob").outcome == FORBID


def test_case_insensitive_rule_written_in_capitals_matches_lower_case() -> None:
    rules = RuleSet([Rule("/Staff/", NOBODY)], case_sensitive=False)
    assert rules.decide("/staff/grades.html", "carol").outcome == FORBID


def test_case_sensitive_rules_respect_case() -> None:
    assert RULES.match("/STAFF/grades.html") is None
    assert RULES.decide("/STAFF/grades.html", "bob").outcome == ALLOW


def test_rules_are_kept_sorted_by_path() -> None:
    paths = [rule.path for rule in RULES.rules]
    assert paths == sorted(paths)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule("/p/", ANYONE), "anyone"),
        (Rule("/p/", SIGNED_IN), "any signed-in user"),
        (Rule("/p/"), "any signed-in user"),
        (Rule("/p/", NOBODY), "nobody"),
        (
            Rule("/p/", LISTED, users=frozenset({"bob", "alice"})),
            "only user alice, user bob",
        ),
        (Rule("/p/", LISTED, groups=frozenset({"staff"})), "only group staff"),
        (
            Rule("/p/", LISTED, frozenset({"carol"}), frozenset({"staff", "admins"})),
            "only user carol, group admins, group staff",
        ),
    ],
)
def test_describe(rule: Rule, text: str) -> None:
    assert rule.describe() == text


@pytest.mark.parametrize(("path", "is_folder"), [("/p/", True), ("/p.html", False)])
def test_is_folder(path: str, is_folder: bool) -> None:
    assert Rule(path).is_folder is is_folder
