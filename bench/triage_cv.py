"""How the triage model's thresholds are picked, checked by cross-validation on the training
corpus alone (issue 12): `python -m bench.triage_cv [--stratified | --shipped]`. No held-out set
is read.

The corpus was written in batches, by different people at different times (its section
comments say which): the issue 4 corpus, the first held-out set (merged long ago), and the
issue 12 passes. Leaving one batch out, training on the others and picking thresholds by
their own repeated 5-fold cross-validation (as `make train-triage` does), then scoring the
batch left out, shows how a way of picking thresholds does on texts written apart from the
ones it was picked on — what a held-out set measures, without one. `--stratified` leaves
out a random fifth instead (5 outer folds); `--shipped` leaves each batch out and scores it
at the shipped thresholds, without picking any (`shipped`, 2 minutes).

Ways of picking compared (`WAYS`: the `bot.triage_train` settings each changes):
- `cap first` — before issue 12c: the best recall − ½ false alarms with out-of-fold
  false alarms at most `MAX_FALSE`; the lowest tied `low`, the middle tied `high`;
- `recall first` — `bot.triage_train.choose`: out-of-fold recall at least `RECALL` first,
  then the false-alarm cap, then the lowest `low`; as in issue 12c (veto cap 0.5 %,
  false-alarm cap 4 %), as shipped since the fourth pass (2 %, 3 %), and around it.
Prints, a way a line, emergency recall, false-urgent rate, safety recall and the
emergencies lost to a veto over all the batches left out, then each batch's counts and
thresholds. Took 8 minutes on the 1,406-text corpus of issue 12c; on the 6,812 texts of the
fourth pass, more than an hour (two of its 21 batches took 8 minutes, beside other work).
"""
from __future__ import annotations

import re
import sys
from collections import Counter

import numpy as np
import yaml

from bot import triage_model
from bot import triage_train as tt
from bot.triage import combine, normalise
from bot.triage_report import CORPUS

# A line that starts a batch of the corpus (the file's start is the issue 4 batch).
BATCH = re.compile(r"# -+ ((?:First held-out set|issue 12)[^(.]*?)(?: -+)?(?: \(.*|\..*)?$")


def batches(path=CORPUS) -> dict[str, str]:
    """Each text's batch: the section comment it comes after."""
    out, name, chunk = {}, "issue 4", []

    def flush():
        for item in yaml.safe_load("\n".join(chunk)) or []:
            out[item["text"]] = name

    for line in path.read_text(encoding="utf-8").splitlines():
        found = BATCH.match(line)
        if found:
            flush()
            name, chunk = found.group(1).strip(), []
        chunk.append(line)
    flush()
    return out


def batch_splits(texts: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(batch, the other batches' indexes, its own indexes) for each batch, in corpus order."""
    of = batches()
    group = np.array([of[t] for t in texts])
    return [(g, np.flatnonzero(group != g), np.flatnonzero(group == g)) for g in dict.fromkeys(of.values())]


def cap_first(recall, false, target, allowed=None):
    """The pick before issue 12c."""
    ok = np.round(false, 9) <= tt.MAX_FALSE[target]
    value = np.where(ok, np.round(recall - false / 2, 9), -np.inf)
    ties = np.flatnonzero(value == value.max())
    low = min(tt.PAIRS[i][0] for i in ties)
    highs = [i for i in ties if tt.PAIRS[i][0] == low]
    return highs[len(highs) // 2]


# Each way: the `bot.triage_train` settings it changes.
WAYS = {"cap first (before 12c)": {"pick": cap_first, "VETO_MISS": 1.0,
                                   "MAX_FALSE": {"emergency": 0.04, "safety": 0.04}},
        "recall first, veto cap 0.5 %, false cap 4 % (12c)": {"VETO_MISS": 0.005,
                                                              "MAX_FALSE": {"emergency": 0.04, "safety": 0.04}},
        "recall first, veto cap 2 %, false cap 4 %": {"MAX_FALSE": {"emergency": 0.04, "safety": 0.04}},
        "recall first, veto cap 2 %, false cap 3 % (shipped)": {},
        "recall first, no veto cap, false cap 3 %": {"VETO_MISS": 1.0}}


def thresholds(way, hits, runs, labels, default):
    saved = {k: getattr(tt, k) for k in way}
    try:
        for k, v in way.items():
            setattr(tt, k, v)
        return tt.choose(hits, runs, labels, default)
    finally:
        for k, v in saved.items():
            setattr(tt, k, v)


def run(stratified: bool = False) -> None:
    from sklearn.model_selection import StratifiedKFold

    triage = tt.rules(tt.ROOT / "config" / "settings.yaml")
    items = tt.corpus()
    texts, labels = [m["text"] for m in items], [m["category"] for m in items]
    hits = [triage.hits(normalise(t)) for t in texts]
    if stratified:
        splits = [(f"fold {k + 1}", tr, te) for k, (tr, te) in enumerate(
            StratifiedKFold(5, shuffle=True, random_state=tt.SEED + 100).split(texts, labels))]
    else:
        splits = batch_splits(texts)
    totals = {way: Counter() for way in WAYS}
    per = {way: [] for way in WAYS}
    for name, train, test in splits:
        sub = lambda xs, idx: [xs[i] for i in idx]  # noqa: E731
        runs = tt.repeated_out_of_fold(sub(texts, train), sub(labels, train))
        models = tt.fit(sub(texts, train), sub(labels, train))
        scores = {t: models[t].predict_proba(sub(texts, test))[:, 1] for t in tt.TARGETS}
        for way, settings in WAYS.items():
            th = thresholds(settings, sub(hits, train), runs, sub(labels, train), triage.default)
            c = tally(hits, labels, test, scores, th, triage.default)
            totals[way].update(c)
            per[way].append(f"{name}: {c['caught']}/{c['emergencies']}, {c['false']}/{c['others']}, "
                            f"{c['vetoed']} vetoed (low {th['emergency']['low']:.2f}, "
                            f"high {th['emergency']['high']:.2f})")
        print(f"  left out {name} ({len(test)} texts)", file=sys.stderr, flush=True)
    print(f"{'stratified 5-fold' if stratified else 'leave one batch out'}, thresholds by "
          f"{tt.REPEATS} x {tt.FOLDS}-fold CV inside each training part; {len(texts)} texts")
    for way, c in totals.items():
        print(f"{way:<52} emergency recall {c['caught'] / c['emergencies']:6.1%} ({c['caught']}/{c['emergencies']})  "
              f"false urgent {c['false'] / c['others']:5.1%} ({c['false']}/{c['others']})  "
              f"safety recall {c['safety caught'] / c['safety']:6.1%}  emergencies vetoed {c['vetoed']}")
        for line in per[way]:
            print(f"{'':<54}{line}")


def tally(hits, labels, test, scores, thresholds, default) -> Counter:
    """The counts for the texts `test` (indexes), scored `scores` (one array a target, in the
    order of `test`), decided at `thresholds`."""
    c = Counter()
    for k, i in enumerate(test):
        choice = combine(hits[i], {t: float(scores[t][k]) for t in tt.TARGETS}, thresholds, default)
        got, want = choice.category, labels[i]
        c["vetoed"] += want == "emergency" and got != "emergency" and choice.vetoed_target == "emergency"
        c["emergencies"] += want == "emergency"
        c["caught"] += want == "emergency" and got == "emergency"
        c["others"] += want != "emergency"
        c["false"] += want != "emergency" and got == "emergency"
        c["safety"] += want == "safety"
        c["safety caught"] += want == "safety" and got == "safety"
    return c


def shipped() -> None:
    """Each batch left out in turn, scored by a model trained on the rest, at the thresholds
    the shipped model file has (no threshold picking inside: 2 minutes, not an hour). What the
    README's "each writing batch left out" row says."""
    triage = tt.rules(tt.ROOT / "config" / "settings.yaml")
    thresholds = triage_model.load(tt.MODEL).thresholds
    items = tt.corpus()
    texts, labels = [m["text"] for m in items], [m["category"] for m in items]
    hits = [triage.hits(normalise(t)) for t in texts]
    total = Counter()
    print(f"each batch left out, thresholds as shipped {thresholds}; {len(texts)} texts")
    for name, train, test in batch_splits(texts):
        models = tt.fit([texts[i] for i in train], [labels[i] for i in train])
        scores = {t: models[t].predict_proba([texts[i] for i in test])[:, 1] for t in tt.TARGETS}
        c = tally(hits, labels, test, scores, thresholds, triage.default)
        total.update(c)
        print(f"  {name:<46} {len(test):5} texts  emergency recall {c['caught']}/{c['emergencies']}  "
              f"false urgent {c['false']}/{c['others']}  safety {c['safety caught']}/{c['safety']}", flush=True)
    print(f"all: emergency recall {total['caught'] / total['emergencies']:.1%}  false urgent "
          f"{total['false'] / total['others']:.1%}  safety recall {total['safety caught'] / total['safety']:.1%}")


if __name__ == "__main__":
    if "--shipped" in sys.argv[1:]:
        shipped()
    else:
        run(stratified="--stratified" in sys.argv[1:])
