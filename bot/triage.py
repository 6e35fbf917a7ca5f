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

Beside the rules, a learned model (`triage.model:` in settings, `bot.triage_model`)
scores every text for emergency and for safety, and the decision combines both
(issue 12): a score at or above the target's `high` threshold alone makes the
category; a rule's match whose score is below `low` is vetoed and the next rule
of another category (or the default) decides; a rule marked `veto: never` is
never overruled by the model ("not breathing"-class rules). Emergency is judged
first, from the emergency rules whatever their place among the safety rules, so a
safety word never masks an emergency in the same text; then safety; then the
remaining rules in order.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bot import triage_model
from bot.config import ROOT

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
    return re.compile(_bounded(body))


def _bounded(body: str) -> str:
    # Word boundaries where an apostrophe inside a word (can't) is part of it
    # but a quote around words ('make me regret it') is not.
    return rf"(?<!\w)(?<!\w')(?:{body})(?!\w)(?!'\w)"


def any_of(patterns: tuple[re.Pattern, ...]) -> re.Pattern | None:
    """One regex that matches where any of `compile_pattern`'s patterns does: a rule's
    patterns in one search, so that a text none of them matches costs one search, not one a
    pattern (the boundaries are written once, outside the alternation). None — no quick
    look, each pattern is tried — where joining could change what matches: group references
    (numbers shift in one alternation) or names that would clash."""
    head, tail = _bounded("\0").split("\0")
    bodies = [p.pattern[len(head):-len(tail)] for p in patterns
              if p.pattern.startswith(head) and p.pattern.endswith(tail)]
    if not bodies or len(bodies) != len(patterns) or any(re.search(r"\\[1-9]|\(\?P[<=]|\(\?\(", b)
                                                          for b in bodies):
        return None
    try:
        return re.compile(_bounded("|".join(bodies)))
    except re.error:
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    any: tuple[re.Pattern, ...]
    unless: tuple[re.Pattern, ...] = ()
    also: tuple[re.Pattern, ...] = ()
    tags: tuple[str, ...] = ()
    negatable: bool = True
    never_vetoed: bool = False
    line: int = 0
    # All of `any` in one alternation: most texts match none of a rule's patterns, and one
    # search says so instead of one a pattern (`any_of`; bench/triage_speed.py).
    any_one: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "any_one", any_of(self.any))


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
    # The model's part (all None/empty when no model is configured): the emergency
    # and safety probabilities; what decided (`rule`, `model`, `default`, `menu`); the
    # words that weighed most for the decision (only words the model learned from the
    # corpus, so no names or numbers); a rule the score vetoed, and the threshold used.
    score: float | None = None
    safety_score: float | None = None
    by: str = "rule"
    words: list[str] = field(default_factory=list)
    never_vetoed: bool = False
    vetoed: str | None = None
    vetoed_matched: str | None = None
    vetoed_target: str | None = None
    veto_threshold: float | None = None
    threshold: float | None = None

    @property
    def why(self) -> str:
        """The reasons in one line: the ticket note, the on-call text and the CLI show it."""
        parts = []
        if self.vetoed:
            parts.append(f'rule "{self.vetoed}" matched "{self.vetoed_matched}" but was vetoed: '
                         f"{self.vetoed_target} score {self._score(self.vetoed_target):.2f} "
                         f"is below {self.veto_threshold:.2f}")
        if self.by == "model":
            parts.append(f"{self.category} score {self._score(self.category):.2f} is at or above "
                         f"{self.threshold:.2f}")
        elif self.rule:
            parts.append(f'rule "{self.rule}" matched "{self.matched}"'
                         + (" (never vetoed)" if self.never_vetoed else ""))
        else:
            parts.append(("no other rule matched" if self.vetoed else "no rule matched")
                         + "; default category")
        if self.score is not None and self.by != "model":
            said = [f"{t} score {self._score(t):.2f}" for t in ("emergency", "safety")
                    if t != self.vetoed_target and (t == "emergency" or self.category == "safety")]
            parts += [", ".join(said)] if said else []
        if self.words:
            parts.append("words that weighed most: " + ", ".join(self.words))
        return "; ".join(parts)

    def _score(self, target: str | None) -> float:
        return (self.safety_score if target == "safety" else self.score) or 0.0


def rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else 1


@dataclass(frozen=True)
class Hit:
    rule: Rule
    matched: str


@dataclass(frozen=True)
class Choice:
    """What `combine` decided: the category, the rule behind it, and what the model did."""
    category: str
    hit: Hit | None = None
    by: str = "rule"
    threshold: float | None = None  # the `high` a score reached when the model decided
    vetoed: Hit | None = None
    vetoed_target: str | None = None
    veto_threshold: float | None = None  # the `low` the vetoed rule's score fell below


def combine(hits: list[Hit], scores: dict | None, thresholds: dict, default: str) -> Choice:
    """Rules and scores to one category (SPEC 5; the module's docstring says how).

    `hits` are the matching rules in order, `scores` each target's probability.
    """
    if hits and (scores is None or hits[0].rule.never_vetoed):
        return Choice(hits[0].rule.category, hits[0])
    veto = {}
    for target in triage_model.TARGETS:
        if scores is None:
            break
        p, t = scores[target], thresholds[target]
        later = triage_model.TARGETS[triage_model.TARGETS.index(target) + 1:]
        first = next((h for h in hits if h.rule.category not in later), None)
        first = first if first and first.rule.category == target else None
        if first and (first.rule.never_vetoed or p >= t["low"]):
            return Choice(target, first, "rule", **veto)
        if first and not veto:
            veto = {"vetoed": first, "vetoed_target": target, "veto_threshold": t["low"]}
        if p >= t["high"]:
            return Choice(target, None, "model", t["high"], **veto)
        hits = [h for h in hits if h.rule.category != target]
    if hits:
        return Choice(hits[0].rule.category, hits[0], "rule", **veto)
    return Choice(default, None, "default", **veto)


@dataclass(frozen=True)
class Triage:
    rules: tuple[Rule, ...]
    categories: dict[str, Category]
    default: str = "general"
    model: triage_model.Model | None = None

    def hits(self, norm: str) -> list[Hit]:
        """Every rule that matches the normalised text, in the settings' order."""
        out = []
        for rule in self.rules:
            found = self._matches(rule, norm)
            if found:
                out.append(Hit(rule, found))
        return out

    def may_be_emergency(self, text: str) -> bool:
        """A quick look for the web tier, to pick the queue: does any emergency rule match?

        Rules only, no model: it costs a fraction of `decide`, and the webhook must answer
        in milliseconds. It errs towards urgency (a keyword the model would veto still jumps
        the queue); the worker's `decide` settles the category, and a text only the model
        finds urgent still has its alert and reply sent from the urgent queue.
        """
        norm = normalise(text)
        return any(self._matches(rule, norm) for rule in self.rules if rule.category == "emergency")

    @staticmethod
    def _matches(rule: "Rule", norm: str) -> str | None:
        if rule.any_one is not None and not rule.any_one.search(norm):
            return None
        found = _first(norm, rule.any, rule.negatable)
        if not found or _first(norm, rule.unless, rule.negatable):
            return None
        if rule.also and not _first(norm, rule.also, rule.negatable):
            return None
        return found

    def decide(self, text: str) -> Decision:
        """The decision for `text` (any text: empty, emoji, long, mixed scripts), with its why."""
        norm = normalise(text)
        scores = self.model.score(norm) if self.model else None
        choice = combine(self.hits(norm),
                         {t: sc.probability for t, sc in scores.items()} if scores else None,
                         self.model.thresholds if self.model else {}, self.default)
        hit = choice.hit
        decision = self.decision_for(choice.category, hit.rule if hit else None,
                                     hit.matched if hit else None)
        decision.by = choice.by
        decision.never_vetoed = bool(hit and hit.rule.never_vetoed and scores is not None)
        if choice.vetoed:
            decision.vetoed, decision.vetoed_matched = choice.vetoed.rule.name, choice.vetoed.matched
            decision.vetoed_target, decision.veto_threshold = choice.vetoed_target, choice.veto_threshold
        decision.threshold = choice.threshold
        if scores is not None:
            decision.score = round(scores["emergency"].probability, 4)
            decision.safety_score = round(scores["safety"].probability, 4)
            if choice.category in scores:
                decision.words = list(scores[choice.category].words)
        return decision

    def decision_for(self, category: str, rule: Rule | None, matched: str | None) -> Decision:
        """The decision a category gives, with the rule and words behind it."""
        cat = self.categories[category]
        tags = [f"hotline_{category}"] + list(rule.tags if rule else ())
        return Decision(category=category, priority=cat.priority, template=cat.template,
                        group_id=cat.group_id, tags=tags, rule=rule.name if rule else None,
                        matched=matched, by="rule" if rule else "default")


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
                          negatable=bool(spec.get("negatable", True)),
                          never_vetoed=_veto(spec, where), line=line))
    default = data.get("default", "general")
    if default not in CATEGORIES:
        raise TriageError(f"{source}: triage.default: {default!r} is not a category")
    model = None
    if data.get("model"):
        try:
            model = load_model(str(data["model"]))
        except triage_model.ModelError as exc:
            raise TriageError(f"{source}: triage.model: {exc}") from None
    return Triage(rules=tuple(rules), categories=categories, default=default, model=model)


def _veto(spec: dict, where: str) -> bool:
    """`veto: never` — the model never overrules this rule; `veto: allowed` (the default) — it may."""
    value = spec.get("veto", "allowed")
    if value not in ("never", "allowed"):
        raise TriageError(f"{where}: veto {value!r} is not one of never, allowed")
    return value == "never"


def load_model(path: str) -> triage_model.Model:
    """The model file at `path` (relative to the project root), read once per change."""
    full = Path(path) if Path(path).is_absolute() else ROOT / path
    try:
        stamp = full.stat().st_mtime_ns
    except OSError as exc:
        raise triage_model.ModelError(f"{full}: cannot read ({exc.strerror})") from None
    return _load_model(str(full), stamp)


@lru_cache(maxsize=4)
def _load_model(path: str, stamp: int) -> triage_model.Model:
    return triage_model.load(Path(path))
