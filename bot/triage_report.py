"""`make triage-report`: the triage rules against the labelled corpus, as a confusion matrix."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import yaml

from bot.config import ROOT
from bot.settings import load_settings
from bot.triage import CATEGORIES

CORPUS = ROOT / "tests" / "fixtures" / "triage" / "corpus.yaml"
# Written separately from the rules and never used to tune them: how the rules
# do on messages nobody fitted them to.
HOLDOUT = ROOT / "tests" / "fixtures" / "triage" / "holdout2.yaml"


def evaluate(triage, corpus: list[dict]) -> dict:
    """Confusion counts, emergency recall and the false-urgent rate."""
    matrix = Counter()
    misses = []
    for item in corpus:
        got = triage.decide(item["text"]).category
        matrix[(item["category"], got)] += 1
        if got != item["category"]:
            misses.append((item["category"], got, item["text"]))
    emergencies = sum(v for (want, _), v in matrix.items() if want == "emergency")
    caught = matrix[("emergency", "emergency")]
    others = sum(v for (want, _), v in matrix.items() if want != "emergency")
    false_urgent = sum(v for (want, got), v in matrix.items()
                       if want != "emergency" and got == "emergency")
    return {"matrix": matrix, "misses": misses, "total": len(corpus),
            "emergency_recall": caught / emergencies if emergencies else 1.0,
            "false_urgent_rate": false_urgent / others if others else 0.0,
            "accuracy": sum(v for (w, g), v in matrix.items() if w == g) / max(1, len(corpus))}


def load_corpus(path: Path = CORPUS) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def report(name: str, path: Path, triage) -> dict:
    result = evaluate(triage, load_corpus(path))
    width = max(len(c) for c in CATEGORIES) + 2
    print(f"{name}: {result['total']} labelled messages ({path.relative_to(ROOT)})")
    print("rows: labelled category; columns: what the rules decided\n")
    print(" " * width + "".join(f"{c[:9]:>10}" for c in CATEGORIES))
    for want in CATEGORIES:
        print(f"{want:<{width}}" + "".join(f"{result['matrix'][(want, got)]:>10}" for got in CATEGORIES))
    print(f"\nemergency recall   {result['emergency_recall']:.1%}  (target >= 95%)")
    print(f"false urgent       {result['false_urgent_rate']:.1%}  (target <= 5%)")
    print(f"overall accuracy   {result['accuracy']:.1%}")
    if result["misses"]:
        print("\nmisclassified (labelled -> decided):")
        for want, got, text in result["misses"]:
            print(f"  {want:>9} -> {got:<9} {text[:90]!r}")
    print()
    return result


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(Path((argv or sys.argv[1:] or [ROOT / "config" / "settings.yaml"])[0]))
    report("corpus (the rules were tuned on it)", CORPUS, settings.triage)
    if HOLDOUT.exists():
        report("held-out set (never used for tuning)", HOLDOUT, settings.triage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
