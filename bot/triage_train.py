"""`make train-triage`: train the triage model from the labelled corpus (issue 12).

Reproducible: the corpus is sorted before use, every random choice has a fixed
seed, and the file written (`config/triage-model.json`) holds numbers rounded to
10 significant digits, so a retrain on the same corpus writes the same file.

- Features: TF-IDF on the normalised text (`bot.triage.normalise`), character
  2–5-grams within words and word 1–2-grams, each seen in at least two messages.
- Two logistic regressions on them: emergency vs the rest, safety vs the rest.
- Thresholds: 5-fold cross-validation on the training corpus alone gives every
  message a score from a model that never saw it; the thresholds are the ones
  with which the rules and those scores together (`bot.triage.combine`) catch the
  most emergencies (and then safety reports) while keeping false alarms under a
  bound. No held-out set is read here.

Needs scikit-learn (requirements-dev.txt); the service does not.
"""
from __future__ import annotations

import sys
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
C = 3.0
MIN_DF = 2
CHAR = (2, 5)
WORD = (1, 2)
DIGITS = 10
GRID = [round(i / 100, 2) for i in range(2, 99)]
# Out-of-fold false alarms allowed when picking thresholds (the targets are 5 %;
# the margin is for texts unlike the corpus).
MAX_FALSE = {"emergency": 0.04, "safety": 0.04}


def corpus(path: Path = CORPUS) -> list[dict]:
    """The labelled messages, sorted so that file order never changes the model."""
    return sorted(load_corpus(path), key=lambda m: (m["text"], m["category"]))


def pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    def vectorizer(analyzer, ngrams):
        return TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, preprocessor=normalise,
                               sublinear_tf=True, min_df=MIN_DF)

    return make_pipeline(make_union(vectorizer("char_wb", CHAR), vectorizer("word", WORD)),
                         LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=10000,
                                            random_state=SEED))


def fit(texts: list[str], labels: list[str]) -> dict:
    """One fitted pipeline per target."""
    return {t: pipeline().fit(texts, [label == t for label in labels]) for t in TARGETS}


def out_of_fold(texts: list[str], labels: list[str]) -> dict[str, list[float]]:
    """Each message's scores from models trained on the other folds."""
    from sklearn.model_selection import StratifiedKFold

    scores = {t: [0.0] * len(texts) for t in TARGETS}
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for train, test in folds.split(texts, labels):
        models = fit([texts[i] for i in train], [labels[i] for i in train])
        for t, model in models.items():
            for i, p in zip(test, model.predict_proba([texts[i] for i in test])[:, 1]):
                scores[t][i] = float(p)
    return scores


def choose(hits: list, scores: dict[str, list[float]], labels: list[str], default: str) -> dict:
    """The thresholds, one target after the other, from out-of-fold scores.

    For each (low, high) pair: recall minus half the false-alarm rate, with false
    alarms under `MAX_FALSE`; among equally good pairs the lowest `low` (the
    fewest vetoes) and the middle `high`. A message's
    category depends only on which side of `low` and `high` its score falls, so
    `combine` runs three times a message and the grid is searched with NumPy.
    """
    import numpy as np

    labels = np.array(labels)
    chosen = {t: {"low": 0.0, "high": 1.0} for t in TARGETS}
    sides = ({"low": 2.0, "high": 2.0}, {"low": -1.0, "high": 2.0}, {"low": -1.0, "high": -1.0})
    for target in TARGETS:
        outcome = np.array([[combine(h, {t: scores[t][i] for t in TARGETS}, dict(chosen, **{target: side}),
                                     default).category == target for side in sides]
                            for i, h in enumerate(hits)])
        p = np.array(scores[target])
        mine, others = labels == target, labels != target
        best, ties = None, []
        for low in GRID:
            for high in GRID:
                if high < low:
                    continue
                decided = outcome[np.arange(len(p)), (p >= low).astype(int) + (p >= high)]
                recall, false = decided[mine].mean(), decided[others].mean()
                if false > MAX_FALSE[target]:
                    continue
                value = round(float(recall - false / 2), 9)
                if best is None or value > best:
                    best, ties = value, []
                if value == best:
                    ties.append((low, high))
        low = min(lo for lo, _ in ties)  # a veto may cost an emergency: the fewest
        highs = sorted(hi for lo, hi in ties if lo == low)
        chosen[target] = {"low": low, "high": highs[len(highs) // 2]}
    return chosen


def known_words(texts: list[str]) -> list[str]:
    """Every word of the corpus: the only words the why may name (no customer's name
    or number reaches a note or a job's arguments unless the corpus has it too)."""
    return sorted({w for t in texts for w in TOKEN.findall(normalise(t)) if not w.isdigit()})


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
    thresholds = choose(hits, out_of_fold(texts, labels), labels, triage.default)
    meta = {"corpus": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name,
            "messages": len(items), "by_category": {c: labels.count(c) for c in CATEGORIES},
            "sklearn": sklearn.__version__, "seed": SEED, "folds": FOLDS, "C": C, "min_df": MIN_DF,
            "max_false_in_cv": MAX_FALSE,
            "recipe": "tf-idf (sublinear, l2 per block) on char_wb 2-5-grams + word 1-2-grams of "
                      "bot.triage.normalise(text); logistic regression, class_weight=balanced"}
    models = fit(texts, labels)
    return export(models, thresholds, meta, texts), models


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:] or [MODEL])[0])
    data = train()
    out.write_text(dumps(data), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{len(data['features'])} features, thresholds {data['thresholds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
