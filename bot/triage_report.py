"""`make triage-report`: triage (rules and model together, and the rules alone) on every
labelled set, as confusion matrices with recall, false-urgent rate and 95 % intervals.

The sets: the training corpus, then every held-out set in `tests/fixtures/triage/` named
`holdout<N>.yaml`, in number order — a new held-out set is reported (and checked by the
tests) as soon as its file is dropped in."""
from __future__ import annotations

import math
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import yaml

from bot.config import ROOT
from bot.settings import load_settings
from bot.triage import CATEGORIES

FIXTURES = ROOT / "tests" / "fixtures" / "triage"
CORPUS = FIXTURES / "corpus.yaml"
# Written separately from the rules and the model and never used to tune either
# (nor to train the model or pick its thresholds): how triage does on messages
# nobody fitted it to. holdout3 was written for issue 12 before any model existed.
HOLDOUT = FIXTURES / "holdout2.yaml"
HOLDOUT3 = FIXTURES / "holdout3.yaml"
ABOUT = {"holdout3.yaml": "issue 12, written before any model existed; "}


def held_out_number(path: Path) -> int:
    """N of `holdout<N>.yaml` (0 when the name has no number)."""
    found = re.fullmatch(r"holdout(\d*)", path.stem)
    return int(found.group(1)) if found and found.group(1) else 0


def held_out_sets(folder: Path = FIXTURES) -> list[Path]:
    """Every `holdout*.yaml` in the folder, in number order."""
    return sorted(folder.glob("holdout*.yaml"), key=lambda p: (held_out_number(p), p.name))


def labelled_sets(folder: Path = FIXTURES) -> list[tuple[str, Path]]:
    """The corpus, then every held-out set, each with the name the report gives it."""
    return [("corpus (the rules were tuned and the model trained on it)", folder / CORPUS.name)] + [
        (f"held-out set {held_out_number(p) or p.stem} ({ABOUT.get(p.name, '')}never used for tuning "
         f"or training)", p) for p in held_out_sets(folder)]


SETS = tuple(labelled_sets())
TARGETS = {"emergency recall": 0.95, "false urgent": 0.05, "safety recall": 0.90}


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default)."""
    if not total:
        return 0.0, 1.0
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(triage, corpus: list[dict]) -> dict:
    """Confusion counts, emergency and safety recall and the false-urgent rate, with counts."""
    matrix = Counter()
    misses = []
    for item in corpus:
        decision = triage.decide(item["text"])
        matrix[(item["category"], decision.category)] += 1
        if decision.category != item["category"]:
            misses.append((item["category"], decision.category, item["text"], decision.why))

    def count(want=None, got=None, not_want=None):
        return sum(v for (w, g), v in matrix.items() if (want is None or w == want)
                   and (got is None or g == got) and (not_want is None or w != not_want))

    rates = {
        "emergency_recall": (count("emergency", "emergency"), count("emergency")),
        "false_urgent": (count(got="emergency", not_want="emergency"), count(not_want="emergency")),
        "safety_recall": (count("safety", "safety"), count("safety")),
    }
    out = {"matrix": matrix, "misses": misses, "total": len(corpus), "counts": rates,
           "accuracy": sum(v for (w, g), v in matrix.items() if w == g) / max(1, len(corpus))}
    out["emergency_recall"] = _rate(*rates["emergency_recall"], empty=1.0)
    out["false_urgent_rate"] = _rate(*rates["false_urgent"], empty=0.0)
    out["safety_recall"] = _rate(*rates["safety_recall"], empty=1.0)
    return out


def _rate(hits: int, total: int, empty: float) -> float:
    return hits / total if total else empty


def load_corpus(path: Path = CORPUS) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def line(name: str, hits: int, total: int, target: str) -> str:
    low, high = wilson(hits, total)
    rate = hits / total if total else 0.0
    return f"{name:<18} {rate:6.1%}  ({hits}/{total}; 95% CI {low:.1%}–{high:.1%})  target {target}"


def report(name: str, path: Path, triage, rules_only=None, show_misses: bool = True) -> dict:
    corpus = load_corpus(path)
    result = evaluate(triage, corpus)
    width = max(len(c) for c in CATEGORIES) + 2
    spanish = sum(1 for m in corpus if m.get("lang") == "es")
    print(f"{name}: {result['total']} labelled messages, {spanish} Spanish "
          f"({path.relative_to(ROOT)})")
    print("rows: labelled category; columns: what triage decided\n")
    print(" " * width + "".join(f"{c[:9]:>10}" for c in CATEGORIES))
    for want in CATEGORIES:
        print(f"{want:<{width}}" + "".join(f"{result['matrix'][(want, got)]:>10}" for got in CATEGORIES))
    c = result["counts"]
    print()
    print(line("emergency recall", *c["emergency_recall"], ">= 95%"))
    print(line("false urgent", *c["false_urgent"], "<= 5%"))
    print(line("safety recall", *c["safety_recall"], ">= 90%"))
    print(f"{'overall accuracy':<18} {result['accuracy']:6.1%}")
    if rules_only is not None:
        r = evaluate(rules_only, corpus)
        print(f"{'rules alone':<18} emergency recall {r['emergency_recall']:.1%}, false urgent "
              f"{r['false_urgent_rate']:.1%}, safety recall {r['safety_recall']:.1%}")
    if show_misses and result["misses"]:
        print("\nmisclassified (labelled -> decided: why):")
        for want, got, text, why in result["misses"]:
            print(f"  {want:>9} -> {got:<9} {text[:80]!r}\n{'':>24}{why}")
    print()
    return result


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(Path((argv or sys.argv[1:] or [ROOT / "config" / "settings.yaml"])[0]))
    triage = settings.triage
    rules_only = replace(triage, model=None) if triage.model else None
    if triage.model:
        print(f"model: {len(triage.model.chars) + len(triage.model.words)} features, thresholds "
              f"{triage.model.thresholds}\n")
    for name, path in labelled_sets():
        if path.exists():
            report(name, path, triage, rules_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
