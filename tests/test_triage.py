"""Triage (issue 4): the rules on the labelled corpus, negation, languages, odd input,
and a broken rule refused at start with its line."""
import dataclasses

import pytest
import yaml

from bot.config import ROOT
from bot.settings import SettingsError, load_settings
from bot.triage import Triage, any_of, compile_pattern, normalise, parse
from bot.triage_report import CORPUS, HOLDOUT, HOLDOUT3, held_out_sets

SETTINGS = load_settings(ROOT / "config" / "settings.yaml")


def decide(text):
    return SETTINGS.triage.decide(text)


@pytest.mark.parametrize("text, category, priority", [
    ("my dog got hit by a car", "emergency", "urgent"),
    ("HES BLEDING EVERYWHERE", "emergency", "urgent"),
    ("he's not breathing", "emergency", "urgent"),
    ("she ate chocolate", "emergency", "urgent"),
    ("my cat is having a siezure", "emergency", "urgent"),
    ("the dog bit the sitter", "emergency", "urgent"),
    ("Max ran away from the walker", "emergency", "urgent"),
    ("need an ER vet now", "emergency", "urgent"),
    ("mi perro se escapó del paseador", "emergency", "urgent"),
    ("está sangrando mucho", "emergency", "urgent"),
    # Terse plain words, with the model beside the rules: a veto must never take one of these
    # (a probe found "I lost my dog", "my dog was attacked" and "atropellaron a mi perro" vetoed
    # after the corpus grew for issue 12's fourth pass; none of these texts is in the corpus).
    ("our cat was hit by a car", "emergency", "urgent"),
    ("my dog was hit by a car", "emergency", "urgent"),
    ("dog hit by a truck", "emergency", "urgent"),
    ("my dog was attacked", "emergency", "urgent"),
    ("a pitbull attacked my dog", "emergency", "urgent"),
    ("the dog bit my son", "emergency", "urgent"),
    ("I lost my dog", "emergency", "urgent"),
    ("the walker lost my dog", "emergency", "urgent"),
    ("cat got out and is gone", "emergency", "urgent"),
    ("dog having a seizure", "emergency", "urgent"),
    ("my cat is not breathing", "emergency", "urgent"),
    ("my puppy is choking", "emergency", "urgent"),
    ("my dog ate rat poison", "emergency", "urgent"),
    ("dog ate grapes", "emergency", "urgent"),
    ("dog left in a hot car", "emergency", "urgent"),
    ("atropellaron a mi perro", "emergency", "urgent"),
    ("mi perro fue atropellado", "emergency", "urgent"),
    ("un perro atacó a mi perra", "emergency", "urgent"),
    ("se perdió mi perro", "emergency", "urgent"),
    ("el paseador perdió a mi perro", "emergency", "urgent"),
    ("mi perra está convulsionando", "emergency", "urgent"),
    ("mi gatita no respira", "emergency", "urgent"),
    ("mi perro comió veneno para ratas", "emergency", "urgent"),
    ("necesito veterinario de emergencia ahora", "emergency", "urgent"),
    ("the owner threatened me", "safety", "high"),
    ("el cliente me amenazó", "safety", "high"),
    ("how do I get reimbursed for the vet bill", "claim", "normal"),
    ("I can't log in", "account", "low"),
    ("what time is my booking", "general", "normal"),
])
def test_plain_words_and_common_misspellings(text, category, priority):
    d = decide(text)
    assert (d.category, d.priority) == (category, priority), d.why


# Known regression, kept visible (strict: the mark fails once they pass again). The rules do not
# match these, but the model alone scores them above `high` (0.86 and 0.98 against 0.54 since the
# fourth pass): in a text this short the keyword's own character n-grams outweigh the negation.
# Tried: C from 1 to 30 (30 ships, for other reasons), negation marks on the word n-grams
# (0.54 and 0.91; cross-validation neutral), twenty more all-clear and negated-emergency
# training texts in issue 12c. For the lead to decide.
MODEL_ALONE_ON_A_NEGATION = pytest.mark.xfail(strict=True, reason="the model alone scores it an emergency")


@pytest.mark.parametrize("text", [
    "not bleeding anymore, thanks for checking",
    pytest.param("the bleeding has stopped", marks=MODEL_ALONE_ON_A_NEGATION),
    pytest.param("ya no está sangrando", marks=MODEL_ALONE_ON_A_NEGATION),
    "my bleeding heart tomatoes are thriving",
    "is a chocolate lab ok with cats?",
    "I lost my password",
    "we found him! no longer lost",
    "my dog bit into his new toy",
    "my dog is dying to go for a walk lol",
])
def test_negations_and_decoys_are_not_emergencies(text):
    assert decide(text).category != "emergency", decide(text).why


@pytest.mark.parametrize("text", ["", "   \n\t ", "🐶😭🙏", "x" * 1600, "狗狗 собака perro 🐕 dog",
                                  "\u200b\u200b", "ok"])
def test_odd_input_gets_the_default_and_never_crashes(text):
    d = decide(text)
    assert d.category == "general" and d.priority == "normal" and d.rule is None


def test_decision_says_which_rule_and_words():
    d = decide("my dog got hit by a car")
    assert d.rule == "injury" and d.matched == "hit by a car"
    assert d.why.startswith('rule "injury" matched "hit by a car"; emergency score ')
    assert d.tags == ["hotline_emergency", "injury"] and d.template == "emergency"


def test_normalisation_folds_accents_case_quotes_and_stretched_letters():
    assert normalise("Está  SANGRANDOOO \u2019ya\u2019") == "esta sangrandoo 'ya'"


def _settings_file(tmp_path, rules_yaml: str):
    path = tmp_path / "s.yaml"
    path.write_text("timezone: UTC\ntriage:\n  rules:\n" + rules_yaml)
    return path


def test_a_bad_pattern_is_refused_at_start_naming_its_line(tmp_path):
    path = _settings_file(tmp_path, (
        "    - name: fine\n      category: claim\n      any: [\"refund*\"]\n"
        "    - name: broken\n      category: emergency\n      any: [\"bleed(\"]\n"))
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert f"{path}:7:" in str(err.value) and "broken" in str(err.value) and "bleed(" in str(err.value)


def test_an_unknown_category_is_refused_naming_its_line(tmp_path):
    path = _settings_file(tmp_path, "    - name: x\n      category: panic\n      any: [\"help\"]\n")
    with pytest.raises(SettingsError, match=r"s\.yaml:4: .*panic"):
        load_settings(path)


def test_the_service_refuses_to_start_with_a_broken_rule(config, tmp_path):
    import dataclasses

    from web import create_app

    path = _settings_file(tmp_path, "    - name: x\n      category: emergency\n      any: [\"(\"]\n")
    with pytest.raises(SettingsError, match="s.yaml:4"):
        create_app(dataclasses.replace(config, settings_path=path), maintenance=False)


def test_rules_without_settings_fall_back_to_the_default_category():
    assert parse({}).decide("my dog got hit by a car").category == "general"


def test_corpus_files_are_well_formed():
    for path in (CORPUS, HOLDOUT, HOLDOUT3, *held_out_sets()):
        items = yaml.safe_load(path.read_text())
        assert all({"text", "category", "lang"} <= set(i) for i in items)
        assert {i["lang"] for i in items} <= {"en", "es", "mixed"}
        assert {i["category"] for i in items} == {"emergency", "safety", "claim", "account", "general"}


def test_the_corpus_repeats_no_text():
    texts = [normalise(m["text"]) for m in yaml.safe_load(CORPUS.read_text())]
    assert len(set(texts)) == len(texts)


def test_cli_shows_the_decision_and_why(app):
    out = app.test_cli_runner().invoke(args=["hotline", "triage", "mi perro se comió chocolate"]).output
    assert "category  emergency" in out and 'rule "poison"' in out and "language  Spanish" in out
    assert "emergency score" in out and "words that weighed most: " in out and "chocolate" in out
    assert "scores    emergency 0." in out and "vetoes a rule below" in out


def test_one_search_a_rule_finds_what_its_patterns_find_one_by_one():
    """`any_of` is a quick look before each rule's patterns are tried in turn: over every corpus
    text, each shipped rule matches (and reports) exactly what it does without it."""
    texts = [normalise(e["text"]) for e in yaml.safe_load(CORPUS.read_text())]
    rules = SETTINGS.triage.rules
    assert all(rule.any_one is not None for rule in rules)
    plain = []
    for rule in rules:
        copy = dataclasses.replace(rule)
        object.__setattr__(copy, "any_one", None)
        plain.append(copy)
    found = [[Triage._matches(rule, t) for rule in rules] for t in texts]
    assert found == [[Triage._matches(rule, t) for rule in plain] for t in texts]
    assert sum(m is not None for row in found for m in row) > len(texts) / 2


def test_patterns_that_cannot_share_one_search_are_tried_one_by_one():
    numbered = (compile_pattern("re:(x)y"), compile_pattern(r"re:(a)b\1"))
    named = (compile_pattern("re:(?P<n>x)"), compile_pattern("re:(?P<n>y)"))
    assert any_of(numbered) is None and any_of(named) is None
    rule = parse({"rules": [{"name": "r", "category": "emergency", "any": ["re:(x)y", r"re:(a)b\1"]}]})
    assert rule.decide("aba").rule == "r"
    # Rebuilt whenever a rule is copied with other patterns.
    [shipped] = [r for r in SETTINGS.triage.rules if r.name == "not-breathing"]
    assert dataclasses.replace(shipped, any=(compile_pattern("zorp"),)).any_one.search("zorp")


def test_the_web_tiers_quick_look_finds_every_rule_emergency_and_errs_towards_urgency():
    """The queue is picked in the webhook by the emergency rules alone (no model): every text
    the rules file as an emergency jumps the queue; a keyword the model vetoes jumps it too,
    and the worker's full decision settles the category."""
    triage = SETTINGS.triage
    texts = [e["text"] for e in yaml.safe_load(CORPUS.read_text())]
    by_rules = [t for t in texts if any(h.rule.category == "emergency" for h in triage.hits(normalise(t)))]
    assert by_rules and all(triage.may_be_emergency(t) for t in by_rules)
    vetoed = "lily bouquet ok?"  # SPEC 5's example
    assert triage.may_be_emergency(vetoed) and decide(vetoed).category != "emergency"
    assert not triage.may_be_emergency("can I change the date of my booking?")
