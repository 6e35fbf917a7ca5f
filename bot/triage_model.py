"""The learned half of triage (SPEC 5, issue 12): how likely a text is an emergency, or a
safety report, and which of its words weighed most.

The model is a file in the repo (`config/triage-model.json`, written by
`make train-triage`, see `bot.triage_train`): TF-IDF over character 2–5-grams and
word 1–2-grams of the normalised text, and two logistic regressions on them. This
module scores with plain Python — the same arithmetic scikit-learn's
`TfidfVectorizer` (character n-grams within words, sublinear tf, smooth idf, l2 norm per vectorizer) and
`LogisticRegression.predict_proba` do, checked against them to 1e-6 by the tests —
so the service needs neither scikit-learn nor NumPy at run time.

The file is JSON, one feature a line so a retrain reads as a diff:
`["c", " ble", idf, emergency coefficient, safety coefficient]` (`c` a character
n-gram within a word, `w` a word n-gram), after a header with the intercepts, thresholds and how
it was trained.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

TARGETS = ("emergency", "safety")
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Score:
    """One target's probability and the words that pushed it most, strongest first."""
    probability: float
    words: tuple[str, ...] = ()


def word_ngrams(text: str, low: int, high: int) -> list[tuple[str, tuple[int, ...]]]:
    """Word n-grams with the indexes of their words (scikit-learn's `analyzer="word"`)."""
    tokens = TOKEN.findall(text)
    return [(" ".join(tokens[i:i + n]), tuple(range(i, i + n)))
            for n in range(low, min(high + 1, len(tokens) + 1)) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class Model:
    chars: dict[str, tuple[float, ...]]  # character n-gram -> (idf, one coefficient a target)
    words: dict[str, tuple[float, ...]]  # word n-gram -> the same
    intercepts: tuple[float, ...]
    thresholds: dict[str, dict[str, float]]
    char_range: tuple[int, int]
    word_range: tuple[int, int]
    quiet: frozenset[str]  # words never named as the reason (the, and, el, que…)
    known: frozenset[str]  # the corpus's words: the only ones the why may name
    meta: dict

    def score(self, norm: str) -> dict[str, Score]:
        """Each target's score for an already normalised text (`bot.triage.normalise`),
        and its words that weighed most (words the model learned, quiet words left out)."""
        spans = [m.span() for m in TOKEN.finditer(norm)]
        tokens = [norm[a:b] for a, b in spans]
        # Character n-grams, counted, each with the words of the white-space chunk it is in.
        char_counts: dict[str, int] = {}
        char_owners: dict[str, set] = {}
        first = 0
        low, high = self.char_range
        for chunk in re.finditer(r"\S+", norm):
            while first < len(spans) and spans[first][0] < chunk.start():
                first += 1
            last = first
            while last < len(spans) and spans[last][1] <= chunk.end():
                last += 1
            owners = range(first, last)
            for gram in _chunk_ngrams(f" {chunk.group(0)} ", low, high):
                if gram in self.chars:
                    char_counts[gram] = char_counts.get(gram, 0) + 1
                    char_owners.setdefault(gram, set()).update(owners)
        word_counts: dict[str, int] = {}
        word_owners: dict[str, set] = {}
        for gram, where in word_ngrams(norm, *self.word_range):
            if gram in self.words:
                word_counts[gram] = word_counts.get(gram, 0) + 1
                word_owners.setdefault(gram, set()).update(where)

        logits = list(self.intercepts)
        weight = [[0.0] * len(spans) for _ in TARGETS]
        for table, counts, owners in ((self.chars, char_counts, char_owners),
                                      (self.words, word_counts, word_owners)):
            values = {g: (1.0 + math.log(n)) * table[g][0] for g, n in counts.items()}
            norm2 = math.sqrt(sum(v * v for v in values.values())) or 1.0
            for gram, value in values.items():
                row, who = table[gram], owners[gram]
                for k in range(len(TARGETS)):
                    part = row[k + 1] * value / norm2
                    logits[k] += part
                    for i in who:
                        weight[k][i] += part / len(who)
        out = {}
        for k, target in enumerate(TARGETS):
            said: dict[str, float] = {}
            for word, w in zip(tokens, weight[k]):
                if word in self.known and word not in self.quiet:
                    said[word] = said.get(word, 0.0) + w
            top = [w for w in sorted(said, key=lambda x: (-said[x], x)) if said[w] > 0][:3]
            out[target] = Score(probability=_sigmoid(logits[k]), words=tuple(top))
        return out


def _chunk_ngrams(padded: str, low: int, high: int):
    """One padded white-space chunk's n-grams, as `char_ngrams` makes them."""
    size = len(padded)
    for n in range(low, high + 1):
        if size <= n:
            yield padded
            return
        for i in range(size - n + 1):
            yield padded[i:i + n]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def parse(data: dict, source: str = "model") -> Model:
    """A model from the file's JSON data; anything missing is refused naming the file."""
    try:
        chars, words = {}, {}
        for kind, gram, idf, *coefs in data["features"]:
            if kind not in ("c", "w") or len(coefs) != len(TARGETS):
                raise ValueError(f"feature {gram!r}: expected [kind, gram, idf, "
                                 f"{', '.join(TARGETS)}]")
            (chars if kind == "c" else words)[gram] = (float(idf),) + tuple(float(c) for c in coefs)
        thresholds = {t: {"high": float(data["thresholds"][t]["high"]),
                          "low": float(data["thresholds"][t]["low"])} for t in TARGETS}
        intercepts = tuple(float(data["intercepts"][t]) for t in TARGETS)
        model = Model(chars=chars, words=words, intercepts=intercepts, thresholds=thresholds,
                      char_range=tuple(data["char_ngrams"]), word_range=tuple(data["word_ngrams"]),
                      quiet=frozenset(data.get("quiet_words") or ()),
                      known=frozenset(data.get("known_words") or ()),
                      meta=dict(data.get("training") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: not a triage model ({exc.__class__.__name__}: {exc})") from None
    for target, t in thresholds.items():
        if not 0.0 <= t["low"] <= t["high"] <= 1.0:
            raise ModelError(f"{source}: thresholds.{target}: need 0 <= low <= high <= 1")
    return model


def load(path: Path) -> Model:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    return parse(data, str(path))


def dumps(data: dict) -> str:
    """The model file's text: header keys sorted, then one feature a line."""
    head = {k: v for k, v in sorted(data.items()) if k != "features"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}," for k, v in head.items()]
    lines.append('  "features": [')
    feats = [json.dumps(f, ensure_ascii=False) for f in data["features"]]
    lines += [f"    {f}," for f in feats[:-1]] + ([f"    {feats[-1]}"] if feats else [])
    lines += ["  ]", "}", ""]
    return "\n".join(lines)
