"""`make train-triage`: train the triage model from the labelled corpus (issue 12).

Reproducible: the corpus is sorted before use, every random choice has a fixed
seed, and the file written (`config/triage-model.json`) holds numbers rounded to
10 significant digits, so a retrain on the same corpus writes the same file.

- Features: TF-IDF on the normalised text (`bot.triage.normalise`), character
  2–5-grams within words and word 1–2-grams, each seen in at least two messages.
- Two logistic regressions on them: emergency vs the rest, safety vs the rest
  (C = 30, class-balanced).
- Thresholds (`low` vetoes a lone keyword hit, `high` alone makes the category):
  5-fold cross-validation on the training corpus alone, repeated `REPEATS` times
  with different shuffles, gives every message `REPEATS` scores from models that
  never saw it. For every (low, high) pair on a 0.01 grid, the rules and those
  scores together (`bot.triage.combine`) give an out-of-fold recall and false-alarm
  rate, averaged over the repeats. Emergency first, then safety:
  1. a veto cap: `low` at most the highest value at which vetoes lose no more than
     `VETO_MISS` (2 %) of the texts of the target that a rule catches, out of fold;
  2. the recall target: only pairs whose recall is at least `RECALL` (95 % emergency,
     90 % safety: the targets) — or, if none is, the best recall;
  3. then the false-alarm cap: among those, if some keep false alarms at or under
     `MAX_FALSE` (3 %), the best recall − ½ false-alarm rate of them; if none does,
     the fewest false alarms;
  4. among ties the lowest `low`, then the lowest `high`.
  History. Until issue 12c the cap came first (the best recall − ½ false alarms under 4 %):
  on the decoy-heavy 1,363-text corpus of then it picked `low` 0.58 for 85 % out-of-fold
  recall. Issue 12c put recall first, with the veto cap at 0.5 %, because the model scored
  short plain keyword texts low ("my dog was hit by a car" 0.18) and vetoed them: out of
  fold 95 % recall for 10 % false urgent, and 11 % false urgent on the blind holdout4.
  A learning curve then showed the model short of data (out-of-fold false urgent at 95 %
  recall 19.8 / 14.8 / 12.0 / 9.8 % on 40 / 60 / 80 / 100 % of the corpus), and the fourth
  pass grew the corpus to 6,812 texts (see its section comments). On its first 6,041, C = 3,
  the best out-of-fold recall for false urgent at most 3 % / 4 %: veto cap 0.5 % (`low` at
  most 0.25) no pair / 95.1 %; 2 % (0.49) 97.1 / 97.8 %; no cap the same as 2 %. So the cap is
  2 %: it binds only where the model is sure. C 3 / 10 / 30 on the same texts: 97.1 / 97.5 /
  97.8 % recall at 3 % false urgent, 95.4 / 96.1 / 96.5 % at 2 %: C = 30. The false-alarm cap
  went from 4 % to 3 %: it trades under a point of recall for a point of false urgent, and
  leaves both targets a margin.
  min_df (1–3), word 1–3-grams, whole-text character n-grams, NB-weighted features and
  negation marks on the word n-grams changed out-of-fold figures for the worse, or by less
  than the spread between repeats: they stay out. One 5-fold split's thresholds swing by
  ±0.1 with its seed; three repeats by ±0.03.
  No held-out set is read here.

Needs scikit-learn (requirements-dev.txt); the service does not.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import yaml

from bot.config import ROOT
from bot.settings import parse_settings
from bot.triage import CATEGORIES, combine, normalise
from bot.triage_model import TARGETS, TOKEN, dumps
from bot.triage_report import CORPUS, load_corpus

MODEL = ROOT / "config" / "triage-model.json"
SEED = 12
FOLDS = 5
REPEATS = 3  # 5-fold CV with seeds SEED, SEED + 1, SEED + 2 (see the docstring)
C = 30.0
MIN_DF = 2
CHAR = (2, 5)
WORD = (1, 2)
DIGITS = 10
GRID = [round(i / 100, 2) for i in range(2, 99)]
# Out-of-fold recall to keep when picking thresholds: the targets. It comes first.
RECALL = {"emergency": 0.95, "safety": 0.90}
# Out-of-fold false alarms allowed, second (the target is 5 %; the margin is for
# texts unlike the corpus).
MAX_FALSE = {"emergency": 0.03, "safety": 0.03}
# Out-of-fold texts of the target that a rule catches and a veto may lose, at most (a share).
VETO_MISS = 0.02


def corpus(path: Path = CORPUS) -> list[dict]:
    """The labelled messages, sorted so that file order never changes the model."""
    return sorted(load_corpus(path), key=lambda m: (m["text"], m["category"]))


def vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    def one(analyzer, ngrams):
        return TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, preprocessor=normalise,
                               sublinear_tf=True, min_df=MIN_DF)

    return make_union(one("char_wb", CHAR), one("word", WORD))


def classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=10000,
                              random_state=SEED)


def pipeline():
    from sklearn.pipeline import make_pipeline

    return make_pipeline(vectorizer(), classifier())


def fit(texts: list[str], labels: list[str]) -> dict:
    """One fitted pipeline per target."""
    return {t: pipeline().fit(texts, [label == t for label in labels]) for t in TARGETS}


def out_of_fold(texts: list[str], labels: list[str], seed: int = SEED) -> dict[str, list[float]]:
    """Each message's scores from models trained on the other folds (one shuffle: `seed`).

    The features do not depend on the labels, so one vectorizer a fold serves both
    targets: the same numbers as `fit`'s pipelines, in half the time."""
    from sklearn.model_selection import StratifiedKFold

    scores = {t: [0.0] * len(texts) for t in TARGETS}
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(texts, labels):
        union = vectorizer()
        seen = union.fit_transform([texts[i] for i in train])
        unseen = union.transform([texts[i] for i in test])
        for t in TARGETS:
            model = classifier().fit(seen, [labels[i] == t for i in train])
            for i, p in zip(test, model.predict_proba(unseen)[:, 1]):
                scores[t][i] = float(p)
    return scores


def repeated_out_of_fold(texts: list[str], labels: list[str], repeats: int = REPEATS) -> list[dict]:
    """`out_of_fold` with `repeats` different shuffles."""
    return [out_of_fold(texts, labels, SEED + k) for k in range(repeats)]


PAIRS = [(low, high) for low in GRID for high in GRID if high >= low]


def rates(hits: list, runs: list[dict], labels: list[str], chosen: dict, target: str, default: str):
    """Out-of-fold recall and false-alarm rate of `target` for every pair of `PAIRS` (the
    other target's thresholds as in `chosen`), averaged over the runs' scores.

    A message's category depends only on which side of `low` and `high` its score falls,
    so `combine` runs three times a message and run, and the grid is searched with NumPy.
    """
    import numpy as np

    labels = np.array(labels)
    mine, others = labels == target, labels != target
    lows, highs = (np.array(x)[:, None] for x in zip(*PAIRS))
    sides = ({"low": 2.0, "high": 2.0}, {"low": -1.0, "high": 2.0}, {"low": -1.0, "high": -1.0})
    recall, false = np.zeros(len(PAIRS)), np.zeros(len(PAIRS))
    for scores in runs:
        outcome = np.array([[combine(h, {t: scores[t][i] for t in TARGETS}, dict(chosen, **{target: side}),
                                     default).category == target for side in sides]
                            for i, h in enumerate(hits)])
        p = np.array(scores[target])[None, :]
        decided = outcome[np.arange(p.shape[1])[None, :], (p >= lows).astype(int) + (p >= highs)]
        recall += decided[:, mine].mean(axis=1) / len(runs)
        false += decided[:, others].mean(axis=1) / len(runs)
    return recall, false


def veto_cap(hits: list, runs: list[dict], labels: list[str], chosen: dict, target: str, default: str) -> float:
    """The highest `low` on the grid at which out-of-fold vetoes lose at most `VETO_MISS` of
    the `target` texts a rule catches (averaged over the runs); 0 when even the lowest does."""
    import numpy as np

    lows = np.array(GRID)[:, None]
    lost = np.zeros(len(GRID))
    for scores in runs:
        def category(side, i, h):
            return combine(h, {t: scores[t][i] for t in TARGETS}, dict(chosen, **{target: side}),
                           default).category
        caught, at_risk = 0, []
        for i, (h, label) in enumerate(zip(hits, labels)):
            if label == target and category({"low": -1.0, "high": 2.0}, i, h) == target:
                caught += 1
                if category({"low": 2.0, "high": 2.0}, i, h) != target:
                    at_risk.append(scores[target][i])
        lost += (np.array(at_risk)[None, :] < lows).sum(axis=1) / max(1, caught) / len(runs)
    return max((low for low, share in zip(GRID, lost) if share <= VETO_MISS + 1e-9), default=0.0)


def pick(recall, false, target: str, allowed=None) -> int:
    """The chosen pair's index among the `allowed` ones (the module's docstring says how)."""
    import numpy as np

    recall, false = np.round(recall, 9), np.round(false, 9)
    allowed = np.ones(len(PAIRS), bool) if allowed is None else allowed
    keep = allowed & (recall >= min(RECALL[target], recall[allowed].max()))
    capped = keep & (false <= MAX_FALSE[target])
    if capped.any():
        value = np.where(capped, np.round(recall - false / 2, 9), -np.inf)
        best = value == value.max()
    else:
        value = np.where(keep, false, np.inf)
        best = value == value.min()
    return min(np.flatnonzero(best), key=lambda i: PAIRS[i])


def choose(hits: list, runs: list[dict], labels: list[str], default: str) -> dict:
    """The thresholds, one target after the other, from out-of-fold scores (`runs`: one
    dict of scores a repeat of the cross-validation)."""
    import numpy as np

    chosen = {t: {"low": 0.0, "high": 1.0} for t in TARGETS}
    for target in TARGETS:
        cap = max(veto_cap(hits, runs, labels, chosen, target, default), GRID[0])
        allowed = np.array([low <= cap for low, _ in PAIRS])
        low, high = PAIRS[pick(*rates(hits, runs, labels, chosen, target, default), target, allowed)]
        chosen[target] = {"low": low, "high": high}
    return chosen


def cross_validated(hits: list, runs: list[dict], labels: list[str], thresholds: dict, default: str) -> dict:
    """Out-of-fold figures with the chosen thresholds, averaged over the runs: what to
    expect on texts like the corpus (the model file's header keeps them)."""
    import numpy as np

    labels = np.array(labels)
    out = {"emergency_recall": [], "false_urgent": [], "safety_recall": []}
    for scores in runs:
        got = np.array([combine(h, {t: scores[t][i] for t in TARGETS}, thresholds, default).category
                        for i, h in enumerate(hits)])
        out["emergency_recall"].append((got[labels == "emergency"] == "emergency").mean())
        out["false_urgent"].append((got[labels != "emergency"] == "emergency").mean())
        out["safety_recall"].append((got[labels == "safety"] == "safety").mean())
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def known_words(texts: list[str]) -> list[str]:
    """The corpus's words that the why may name: no customer's name or number reaches a note
    or a job's arguments unless the corpus has it too, as a word. Nor do the names the corpus
    itself uses: a word it writes capitalised inside a sentence more than once and more often
    than in lower case ("Biscuit got out", "Marcus, the walker") is left out. A name the corpus
    only writes in lower case, or that is also a word ("buddy", "peanut"), may still be said."""
    lower, capital = Counter(), Counter()
    for text in texts:
        plain = unicodedata.normalize("NFKD", text)
        plain = "".join(c for c in plain if not unicodedata.combining(c))
        for sentence in re.split(r"[.!?¡¿\n]+", plain):
            for k, word in enumerate(re.findall(r"(?u)\b\w\w+\b", sentence)):
                if word.islower():
                    lower[normalise(word)] += 1
                elif k and word[0].isupper() and not word.isupper():
                    capital[normalise(word)] += 1
    words = {w for t in texts for w in TOKEN.findall(normalise(t)) if not w.isdigit()}
    return sorted(w for w in words if capital[w] < 2 or lower[w] >= capital[w])


def export(models: dict, thresholds: dict, meta: dict, texts: list[str]) -> dict:
    """The model file's data: shared vocabulary and idf, one coefficient per target."""
    union = models[TARGETS[0]].steps[0][1]
    features, offset = [], 0
    for (name, vec), kind in zip(union.transformer_list, ("c", "w")):
        for gram, index in sorted(vec.vocabulary_.items()):
            column = offset + index
            coefs = [_round(models[t].steps[-1][1].coef_[0][column]) for t in TARGETS]
            features.append([kind, gram, _round(vec.idf_[index])] + coefs)
        offset += len(vec.vocabulary_)
    return {"char_ngrams": list(CHAR), "word_ngrams": list(WORD), "quiet_words": quiet_words(),
            "known_words": known_words(texts),
            "intercepts": {t: _round(models[t].steps[-1][1].intercept_[0]) for t in TARGETS},
            "thresholds": thresholds, "training": meta, "features": features}


# Spanish function words, like scikit-learn's English list below.
SPANISH_QUIET = """a al algo como con de del el ella en es esta este esto ha hay la las le les lo los
me mi mis muy nos o para pero por que se su sus te tu un una uno y ya yo""".split()
# Words that change what a message means, named even though they are short.
NOT_QUIET = {"no", "not", "nor", "never", "cannot", "off", "out", "fire", "down", "nothing"}


def quiet_words() -> list[str]:
    """Words the why never names as the reason: function words in English and Spanish."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = set(ENGLISH_STOP_WORDS) | set(SPANISH_QUIET) | {"hes", "shes", "im", "got", "get", "just",
                                                             "like", "pls", "please", "lol"}
    return sorted(words - NOT_QUIET)


def _round(x: float) -> float:
    return float(f"{float(x):.{DIGITS}g}")


def rules(settings_path: Path):
    """The settings' triage rules alone (the model being trained may not exist yet)."""
    data = yaml.safe_load(Path(settings_path).read_text(encoding="utf-8")) or {}
    (data.get("triage") or {}).pop("model", None)
    return parse_settings(data, str(settings_path)).triage


def train(path: Path = CORPUS, settings_path: Path = ROOT / "config" / "settings.yaml") -> dict:
    """Train on the corpus at `path`; the model file's data."""
    return train_models(path, settings_path)[0]


def train_models(path: Path = CORPUS, settings_path: Path = ROOT / "config" / "settings.yaml"):
    """The model file's data, and the fitted scikit-learn pipelines it was exported from."""
    import sklearn

    items = corpus(path)
    texts, labels = [m["text"] for m in items], [m["category"] for m in items]
    triage = rules(settings_path)
    hits = [triage.hits(normalise(t)) for t in texts]
    runs = repeated_out_of_fold(texts, labels)
    thresholds = choose(hits, runs, labels, triage.default)
    meta = {"corpus": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name,
            "messages": len(items), "by_category": {c: labels.count(c) for c in CATEGORIES},
            "sklearn": sklearn.__version__, "seed": SEED, "folds": FOLDS, "repeats": REPEATS, "C": C,
            "min_df": MIN_DF, "recall_in_cv": RECALL, "max_false_in_cv": MAX_FALSE, "veto_miss_in_cv": VETO_MISS,
            "cv": cross_validated(hits, runs, labels, thresholds, triage.default),
            "recipe": "tf-idf (sublinear, l2 per block) on char_wb 2-5-grams + word 1-2-grams of "
                      "bot.triage.normalise(text); logistic regression, class_weight=balanced"}
    models = fit(texts, labels)
    return export(models, thresholds, meta, texts), models


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:] or [MODEL])[0])
    data = train()
    out.write_text(dumps(data), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{len(data['features'])} features, thresholds {data['thresholds']}, "
          f"out of fold {data['training']['cv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
