"""The learned model beside the triage rules (issue 12): the shipped file is what training
writes, the pure-Python scorer is scikit-learn's arithmetic, rules and scores combine as
SPEC 5 says, and triage meets its targets on the corpus and honest floors on held-out sets."""
import json

import pytest
import yaml

from bot import triage_model
from bot.config import ROOT
from bot.settings import SettingsError, load_settings
from bot.triage import Hit, Rule, combine, compile_pattern, normalise
from bot.triage_model import TARGETS
from bot.triage_report import (CORPUS, FIXTURES, HOLDOUT, HOLDOUT3, evaluate, held_out_number,
                               held_out_sets, load_corpus, wilson)

SETTINGS = load_settings(ROOT / "config" / "settings.yaml")
MODEL_FILE = ROOT / "config" / "triage-model.json"


@pytest.fixture(scope="module")
def trained():
    """One training run on the corpus (a few seconds): the file's data and the pipelines."""
    from bot import triage_train

    return triage_train.train_models()


def test_retraining_reproduces_the_shipped_model_file(trained):
    data, _ = trained
    shipped = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    assert data["thresholds"] == shipped["thresholds"]
    assert data["training"] == shipped["training"]
    assert data["known_words"] == shipped["known_words"] and data["quiet_words"] == shipped["quiet_words"]
    assert [f[:2] for f in data["features"]] == [f[:2] for f in shipped["features"]]
    for new, old in zip(data["features"], shipped["features"]):
        assert new[2:] == pytest.approx(old[2:], rel=1e-6, abs=1e-9), new[1]
    assert data["intercepts"] == pytest.approx(shipped["intercepts"], rel=1e-6)


def test_the_scorer_matches_scikit_learn_predict_proba_on_the_corpus(trained):
    _, models = trained
    texts = [m["text"] for m in load_corpus(CORPUS)] + ["", "🐶", "x" * 1600, "NO   RESPIRA!!"]
    for target in TARGETS:
        expected = models[target].predict_proba(texts)[:, 1]
        got = [SETTINGS.triage.model.score(normalise(t))[target].probability for t in texts]
        assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-6, target


def test_corpus_meets_the_targets_with_rules_and_model():
    result = evaluate(SETTINGS.triage, load_corpus(CORPUS))
    assert result["emergency_recall"] >= 0.95, result["misses"]
    assert result["false_urgent_rate"] <= 0.05, result["misses"]
    assert result["safety_recall"] >= 0.90, result["misses"]


@pytest.mark.parametrize("path, recall, false_urgent, safety", [
    # Floors, not targets: a retrain that does worse fails. Figures since issue 12's fourth pass
    # (6,812 training texts): holdout2 97.6 % / 1.7 % / 100 %, holdout3 96.9 % / 2.2 % / 90.3 %,
    # holdout4 97.1 % / 3.1 % / 92.5 % (95.7 % / 9.4 % / 90.0 % when it was written).
    (HOLDOUT, 0.95, 0.05, 0.90),
    (HOLDOUT3, 0.93, 0.05, 0.87),
    (FIXTURES / "holdout4.yaml", 0.95, 0.06, 0.875),
    # The blind set of the fourth pass, measured once on the model frozen for it (its file's
    # header says which) and again on the shipped one: 100 % (70/70) / 1.6 % (2/127) / 97.5 %
    # (39/40) both times. The targets are the floors.
    (FIXTURES / "holdout5.yaml", 0.95, 0.05, 0.90),
])
def test_held_out_sets_stay_above_honest_floors(path, recall, false_urgent, safety):
    corpus = load_corpus(path)
    result = evaluate(SETTINGS.triage, corpus)
    # The counts only: a failure never prints a held-out text (`make triage-report` shows them).
    assert result["emergency_recall"] >= recall, result["counts"]
    assert result["false_urgent_rate"] <= false_urgent, result["counts"]
    assert result["safety_recall"] >= safety, result["counts"]


# Every held-out set in the folder; from holdout3 on, a set is written for issue 12 and must be
# big enough.
HELD_OUT = sorted(held_out_sets(), key=lambda p: (held_out_number(p), p.name))


def test_every_held_out_set_is_there():
    assert [p.name for p in HELD_OUT][:4] == ["holdout2.yaml", "holdout3.yaml", "holdout4.yaml", "holdout5.yaml"]


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: p.name)
def test_no_held_out_text_is_in_the_training_corpus(path):
    held = load_corpus(path)
    trained_on = {normalise(m["text"]) for m in load_corpus(CORPUS)}
    # A count only, so a failure never prints a held-out text.
    assert sum(normalise(m["text"]) in trained_on for m in held) == 0


@pytest.mark.parametrize("path", [p for p in HELD_OUT if held_out_number(p) >= 3], ids=lambda p: p.name)
def test_issue_12_held_out_sets_are_big_enough_and_a_fifth_spanish(path):
    held = load_corpus(path)
    assert len(held) >= 150 and sum(m["lang"] == "es" for m in held) / len(held) >= 0.20


# A decoy of the corpus that the model vetoes: the same path, kept tested.
VETOED = "are lilies ok in a house with no pets? asking for a gift"


@pytest.mark.parametrize("text, category, why", [
    # A low score vetoes a lone keyword hit.
    ("lily bouquet ok?", "general", 'rule "poison" matched "lily" but was vetoed: emergency score'),
    (VETOED, "general", 'rule "poison" matched "lilies" but was vetoed: emergency score'),
    ("if a dog had a seizure what would they do", "general", 'rule "hypothetical-or-all-clear"'),
    # A high score alone makes an emergency.
    ("car clipped him … breathing but not getting up", "emergency", "is at or above"),
    ("rattler got him on the snout", "emergency", "is at or above"),
    # Never vetoed, whatever the score.
    ("he's not breathing", "emergency", 'rule "not-breathing" matched "not breathing" (never vetoed)'),
    # Words that say an attack happened are never vetoed (issue 12, fourth pass: the model
    # scores this terse text low); others may be, and a playful bite is.
    ("my dog was attacked", "emergency", 'rule "attacked-or-bitten" matched "was attacked" (never vetoed)'),
    ("the dog bit the sitter", "emergency", 'rule "bite-or-attack" matched "bit the sitter"; emergency score'),
    ("my puppy bit my sleeve playing tug, so cute", "general",
     'rule "bite-or-attack" matched "bit my" but was vetoed: emergency score'),
    # A safety word does not mask an emergency in the same text.
    ("left my pug in the hot car, he's limp", "emergency", 'rule "pet-left-in-danger"'),
    ("the owner threatened me and then his dog bit my hand", "emergency", 'rule "bite-or-attack"'),
    # A no-show that leaves a pet in danger is an emergency; one that does not is safety.
    ("sitter never came and the cat has had no water since friday", "emergency", "pet-left-in-danger"),
    ("la cuidadora no vino y el perro está encerrado", "emergency", "pet-left-in-danger"),
    ("walker didn't show up, my neighbour walked him, dog is fine", "safety", 'rule "safety"'),
])
def test_rules_and_scores_combine(text, category, why):
    decision = SETTINGS.triage.decide(text)
    assert decision.category == category and why in decision.why, decision.why


def test_the_why_never_names_a_name_the_corpus_uses_but_names_a_drug():
    known = set(SETTINGS.triage.model.known)
    # Pet and people names the corpus writes as names; words of the same texts stay.
    assert not {"biscuit", "luna", "marcus", "bandit"} & known
    assert {"advil", "ill", "dog", "bleeding", "rattler"} <= known
    decision = SETTINGS.triage.decide("Biscuit ate a bottle of advil")
    assert decision.category == "emergency" and "biscuit" not in decision.why.lower()


def test_why_names_the_score_and_the_words_that_weighed_most_but_never_a_name():
    decision = SETTINGS.triage.decide("Zorblax got hit by a car and is bleeding everywhere")
    assert decision.why.startswith('rule "injury" matched "hit by a car"; emergency score ')
    assert "words that weighed most: " in decision.why and "bleeding" in decision.words
    assert "zorblax" not in decision.why.lower() and len(decision.words) <= 3


def rule(name, category, never=False):
    return Rule(name=name, category=category, any=(compile_pattern(name),), never_vetoed=never)


THRESHOLDS = {"emergency": {"low": 0.2, "high": 0.8}, "safety": {"low": 0.1, "high": 0.5}}
INJURY, NOT_BREATHING = rule("bleeding", "emergency"), rule("not breathing", "emergency", never=True)
SAFETY, CLAIM = rule("drunk", "safety"), rule("bill", "claim")


def scores(emergency, safety=0.0):
    return {"emergency": emergency, "safety": safety}


@pytest.mark.parametrize("hits, emergency, safety, category, by, vetoed", [
    ([Hit(INJURY, "bleeding")], 0.5, 0, "emergency", "rule", None),
    ([Hit(INJURY, "bleeding")], 0.1, 0, "general", "default", "bleeding"),
    ([Hit(INJURY, "bleeding"), Hit(CLAIM, "bill")], 0.1, 0, "claim", "rule", "bleeding"),
    ([Hit(NOT_BREATHING, "not breathing")], 0.01, 0, "emergency", "rule", None),
    ([], 0.9, 0, "emergency", "model", None),
    ([Hit(CLAIM, "bill")], 0.9, 0, "emergency", "model", None),
    # A safety rule placed before an emergency rule does not mask it.
    ([Hit(SAFETY, "drunk"), Hit(INJURY, "bleeding")], 0.5, 0.9, "emergency", "rule", None),
    ([Hit(SAFETY, "drunk"), Hit(NOT_BREATHING, "not breathing")], 0.01, 0.9, "emergency", "rule", None),
    ([Hit(SAFETY, "drunk")], 0.1, 0.05, "general", "default", "drunk"),
    ([Hit(SAFETY, "drunk")], 0.1, 0.3, "safety", "rule", None),
    ([Hit(CLAIM, "bill")], 0.1, 0.6, "safety", "model", None),
    ([Hit(CLAIM, "bill")], 0.1, 0.3, "claim", "rule", None),
])
def test_combine(hits, emergency, safety, category, by, vetoed):
    choice = combine(hits, scores(emergency, safety), THRESHOLDS, "general")
    assert (choice.category, choice.by) == (category, by)
    assert (choice.vetoed.matched if choice.vetoed else None) == vetoed


def test_without_a_model_the_first_rule_decides():
    assert combine([Hit(INJURY, "bleeding"), Hit(CLAIM, "bill")], None, {}, "general").category == "emergency"
    assert combine([], None, {}, "general").by == "default"


def settings_with(tmp_path, change):
    data = yaml.safe_load((ROOT / "config" / "settings.yaml").read_text())
    change(data["triage"])
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_veto_setting_other_than_never_or_allowed_is_refused_naming_the_rule(tmp_path):
    path = settings_with(tmp_path, lambda t: t["rules"][0].update(veto="sometimes"))
    with pytest.raises(SettingsError, match=r"hypothetical-or-all-clear\): veto 'sometimes' is not one of"):
        load_settings(path)


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "not valid JSON"),
    ('{"features": []}', "not a triage model"),
])
def test_a_missing_or_broken_model_file_is_refused_at_start(tmp_path, content, message):
    model = tmp_path / "model.json"
    if content is not None:
        model.write_text(content)
    path = settings_with(tmp_path, lambda t: t.update(model=str(model)))
    with pytest.raises(SettingsError, match=f"triage.model: .*{message}"):
        load_settings(path)


def test_the_model_file_is_one_feature_a_line_for_review():
    lines = MODEL_FILE.read_text(encoding="utf-8").splitlines()
    features = json.loads(MODEL_FILE.read_text())["features"]
    assert len(lines) > len(features) and all(line.startswith('    ["') for line in lines[-len(features) - 2:-2])
    assert triage_model.dumps(json.loads(MODEL_FILE.read_text())) == MODEL_FILE.read_text()


def test_wilson_interval():
    low, high = wilson(58, 65)
    assert 0.79 < low < 0.80 and 0.94 < high < 0.95
    assert wilson(0, 0) == (0.0, 1.0) and wilson(10, 10)[1] == 1.0
