"""Triage: which category and priority a customer's words call for, and why (SPEC 5).

Rules live in the settings file (`triage:`), tried in order; the first whose
patterns match — and whose `unless` patterns do not — decides the category,
and the category decides priority, Zendesk group and reply template.

Texts and patterns are compared after the same normalisation: lower case,
accents removed (está = esta), curly quotes straightened, letters repeated
three times or more cut to two ("bleeeding" = "bleeding"). A pattern is a
regular expression on word boundaries, where spaces match any white space and
`*` right after a letter matches any ending ("bleed*").

A match right after a negation ("not", "no longer", "ya no"…) or right before
"anymore"/"stopped" does not count, so "not bleeding anymore" alone is not an
emergency — unless the rule is `negatable: false` ("not breathing" is one).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

PRIORITIES = ("low", "normal", "high", "urgent")
CATEGORIES = ("emergency", "safety", "claim", "account", "general")

NEGATIONS = {"not", "no", "never", "isn't", "isnt", "wasn't", "wasnt", "aren't", "arent",
             "without", "stopped", "nunca", "sin"}
AFTER_NEGATIONS = {"anymore", "stopped", "dejo", "paro"}
WINDOW = 3


class TriageError(ValueError):
    """A rule that cannot be used; the message names its line."""


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").lower()
    text = re.sub(r"([a-z])\1{2,}", r"\1\1", text)
    return re.sub(r"\s+", " ", text).strip()


def compile_pattern(pattern: str) -> re.Pattern:
    """A settings pattern → a compiled regex on word boundaries (raises re.error)."""
    body = pattern[3:] if pattern.startswith("re:") else normalise(pattern)
    if not pattern.startswith("re:"):
        body = re.sub(r"(?<=\w)\*", r"\\w*", body).replace(" ?", r"\s?").replace(" ", r"\s+")
    # Word boundaries where an apostrophe inside a word (can't) is part of it
    # but a quote around words ('make me regret it') is not.
    return re.compile(rf"(?<!\w)(?<!\w'){body}(?!\w)(?!'\w)")


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    any: tuple[re.Pattern, ...]
    unless: tuple[re.Pattern, ...] = ()
    also: tuple[re.Pattern, ...] = ()
    tags: tuple[str, ...] = ()
    negatable: bool = True
    line: int = 0


@dataclass(frozen=True)
class Category:
    priority: str
    group_id: int | None = None
    template: str = "ack"


@dataclass
class Decision:
    category: str
    priority: str
    template: str
    group_id: int | None = None
    tags: list[str] = field(default_factory=list)
    rule: str | None = None
    matched: str | None = None

    @property
    def why(self) -> str:
        if not self.rule:
            return "no rule matched; default category"
        return f'rule "{self.rule}" matched "{self.matched}"'


def rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else 1


@dataclass(frozen=True)
class Triage:
    rules: tuple[Rule, ...]
    categories: dict[str, Category]
    default: str = "general"

    def decide(self, text: str) -> Decision:
        """The decision for `text` (any text: empty, emoji, long, mixed scripts)."""
        norm = normalise(text)
        for rule in self.rules:
            if _first(norm, rule.unless, rule.negatable):
                continue
            if rule.also and not _first(norm, rule.also, rule.negatable):
                continue
            found = _first(norm, rule.any, rule.negatable)
            if found:
                return self.decision_for(rule.category, rule, found)
        return self.decision_for(self.default, None, None)

    def decision_for(self, category: str, rule: Rule | None, matched: str | None) -> Decision:
        """The decision a category gives, with the rule and words behind it."""
        cat = self.categories[category]
        tags = [f"hotline_{category}"] + list(rule.tags if rule else ())
        return Decision(category=category, priority=cat.priority, template=cat.template,
                        group_id=cat.group_id, tags=tags, rule=rule.name if rule else None,
                        matched=matched)


def _first(text: str, patterns, negatable: bool) -> str | None:
    """The first match of any pattern that is not negated, or None."""
    for pattern in patterns:
        for match in pattern.finditer(text):
            if not (negatable and _negated(text, match)):
                return match.group(0)
    return None


def _negated(text: str, match: re.Match) -> bool:
    before = re.findall(r"[\w']+", text[:match.start()])[-WINDOW:]
    after = re.findall(r"[\w']+", text[match.end():])[:WINDOW]
    return any(w in NEGATIONS for w in before) or any(w in AFTER_NEGATIONS for w in after)


def _patterns(spec: dict, key: str, where: str) -> tuple[re.Pattern, ...]:
    """A rule's `key` patterns compiled; a bad one is refused naming the rule's line."""
    out = []
    for p in spec.get(key) or []:
        try:
            out.append(compile_pattern(str(p)))
        except re.error as exc:
            raise TriageError(f"{where}: {key} pattern {p!r} is not valid: {exc}") from None
    return tuple(out)


def parse(data: dict | None, source: str = "settings") -> Triage:
    """Check the `triage:` section and build a `Triage`; errors name the line."""
    data = data or {}
    raw_categories = data.get("categories") or {}
    categories = {}
    for name in CATEGORIES:
        spec = raw_categories.get(name) or {}
        priority = spec.get("priority", "urgent" if name == "emergency" else "normal")
        if priority not in PRIORITIES:
            raise TriageError(f"{source}: triage.categories.{name}.priority: {priority!r} is not one "
                              f"of {', '.join(PRIORITIES)}")
        group = spec.get("group_id")
        try:
            group = int(group) if group not in (None, "") else None
        except (TypeError, ValueError):
            raise TriageError(f"{source}: triage.categories.{name}.group_id: {group!r} is not a "
                              f"Zendesk group id") from None
        template = str(spec.get("template") or "ack")
        if not re.fullmatch(r"[a-z0-9_]+", template):
            raise TriageError(f"{source}: triage.categories.{name}.template: {template!r} is not a "
                              f"template name")
        categories[name] = Category(priority=priority, group_id=group, template=template)
    unknown = set(raw_categories) - set(CATEGORIES) - {"__line__"}
    if unknown:
        raise TriageError(f"{source}: triage.categories: unknown category {sorted(unknown)[0]!r} "
                          f"(use {', '.join(CATEGORIES)})")

    rules = []
    for i, spec in enumerate(data.get("rules") or []):
        line = spec.get("__line__", 0) if isinstance(spec, dict) else 0
        where = f"{source}:{line}: triage rule {i + 1}" if line else f"{source}: triage rule {i + 1}"
        if not isinstance(spec, dict):
            raise TriageError(f"{where}: expected a mapping with name, category and any")
        name = spec.get("name") or f"rule-{i + 1}"
        where += f" ({name})"
        if spec.get("category") not in CATEGORIES:
            raise TriageError(f"{where}: category {spec.get('category')!r} is not one of "
                              f"{', '.join(CATEGORIES)}")
        if not spec.get("any"):
            raise TriageError(f"{where}: no patterns under `any`")

        rules.append(Rule(name=name, category=spec["category"], any=_patterns(spec, "any", where),
                          unless=_patterns(spec, "unless", where),
                          also=_patterns(spec, "also", where), tags=tuple(spec.get("tags") or ()),
                          negatable=bool(spec.get("negatable", True)), line=line))
    default = data.get("default", "general")
    if default not in CATEGORIES:
        raise TriageError(f"{source}: triage.default: {default!r} is not a category")
    return Triage(rules=tuple(rules), categories=categories, default=default)
