"""Triage at run time (issue 12): the shipped pure-Python scorer against scikit-learn.

Per message, over every labelled text (corpus and held-out sets), each timed
`REPEAT` times with `time.perf_counter_ns`, one text at a time as the service
scores them:
- `decide`: the whole decision (normalise, every rule, both scores, the why);
- `score`: the pure-Python scorer alone (`bot.triage_model`);
- `sklearn`: the same two models as scikit-learn pipelines, `predict_proba([text])`
  for each target — what the service would do with scikit-learn at run time;
- a 1,600-character text (the longest SMS Twilio concatenates) through `decide`.
Also what each choice installs (the wheels' files, from importlib.metadata) and
how long a fresh interpreter takes to import it. Target: <= 2 ms a message.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bot.config import ROOT
from bot.settings import load_settings
from bot.triage import normalise
from bot.triage_report import SETS, load_corpus

REPEAT = 5
SKLEARN = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")


def _times(fn, texts) -> dict:
    samples = []
    for text in texts:
        for _ in range(REPEAT):
            start = time.perf_counter_ns()
            fn(text)
            samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[int(len(samples) * 0.99)], 3), "n": len(samples)}


def _installed_mb(names) -> float:
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        total += sum((Path(dist.locate_file(f)).stat().st_size for f in dist.files or ()
                      if Path(dist.locate_file(f)).is_file()))
    return round(total / 1e6, 1)


def _import_s(statement: str) -> float:
    best = None
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT)
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return round(best, 2)


def run() -> dict:
    from bot import triage_train

    triage = load_settings(ROOT / "config" / "settings.yaml").triage
    texts = [m["text"] for _, path in SETS for m in load_corpus(path)]
    models = triage_train.fit(*zip(*[(m["text"], m["category"]) for m in triage_train.corpus()]))
    model_file = ROOT / "config" / "triage-model.json"
    return {
        "messages": len(texts),
        "decide": _times(triage.decide, texts),
        "score": _times(lambda t: triage.model.score(normalise(t)), texts),
        "sklearn": _times(lambda t: [m.predict_proba([t]) for m in models.values()], texts),
        "decide_1600_chars": _times(triage.decide, ["my dog is hurt and " * 84 + "help"]),
        "installed_mb": {"pure": round(((ROOT / "bot" / "triage_model.py").stat().st_size
                                        + model_file.stat().st_size) / 1e6, 2),
                         "sklearn": _installed_mb(SKLEARN)},
        "import_s": {"pure": _import_s("from bot.triage_model import load; load(\"config/triage-model.json\")"),
                     "sklearn": _import_s("import sklearn.pipeline, sklearn.linear_model, "
                                          "sklearn.feature_extraction.text")},
    }


def format_report(r: dict) -> str:
    lines = [f"triage at run time ({r['messages']} labelled texts x {REPEAT}; target <= 2 ms a message):"]
    for key in ("decide", "score", "sklearn", "decide_1600_chars"):
        lines.append(f"  {key:<18} median {r[key]['median_ms']:.3f} ms  p99 {r[key]['p99_ms']:.3f} ms")
    lines.append(f"  installed          pure scorer + model {r['installed_mb']['pure']} MB; "
                 f"scikit-learn + numpy + scipy + joblib + threadpoolctl {r['installed_mb']['sklearn']} MB")
    lines.append(f"  fresh import       pure {r['import_s']['pure']} s; scikit-learn {r['import_s']['sklearn']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run()))
