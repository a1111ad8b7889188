"""Alert texts: every rule speaks through the catalogue (alerting.messages), in every language.

One scenario per message key drives the real engine until the rule fires; the keys the rules
emitted must be exactly the catalogue's, each rendering in English (the signal's ``message``)
and French with the arguments the rule gave, then with any arguments of the same types.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine import Engine
from alerting.messages import (
    CATALOGUE,
    HISTORY,
    LANGUAGES,
    NOTICE,
    TARGET_ROW,
    TERMS,
    Arg,
    MessageError,
    Text,
    placeholders,
    render,
    render_history,
    render_notice,
    render_or,
)
from alerting.notify.config import CHANGES
from alerting.rules.diabetes import ADULT_TARGETS, OLDER_TARGETS, missed_targets, tir_metrics
from alerting.seam import AlertSignal, Severity
from alerting.settings import PatientSettings, RulesConfig
from tests.alerting.alerting_kit import T0, days, engine, feed, minutes, reading, weights
from vigie.contract import Kind


def _glucose(values: list[float], step_min: float = 5.0) -> list[AlertSignal]:
    return feed(engine(), [reading(Kind.GLUCOSE, v, T0 + minutes(i * step_min))
                           for i, v in enumerate(values)])


def _one(kind: Kind, value: float, **settings: object) -> list[AlertSignal]:
    return feed(engine(**settings), [reading(kind, value, T0)])


def _loss(pct: float) -> list[AlertSignal]:
    series = [70.0] * 10 + [70.0 * (1 - pct / 100)] * 30
    return feed(engine(age=82, resident=True), weights(series))


def _tir() -> list[AlertSignal]:
    values = [60.0 if i % 100 < 3 else 130.0 for i in range(15 * 288)]
    return feed(engine(age=80), [reading(Kind.GLUCOSE, v, T0 + minutes(5 * i))
                                 for i, v in enumerate(values)])


def _silence(profile: str, kind: Kind | None, after: timedelta) -> list[AlertSignal]:
    eng = Engine(RulesConfig(default=PatientSettings.model_validate({"profile": profile})))
    eng.evaluate(reading(kind or Kind.BP_SYSTOLIC, 120 if kind is not Kind.WEIGHT else 80, T0))
    return eng.tick(T0 + after)


def _cgm_then_tick(after: timedelta, heartbeat: bool = False) -> list[AlertSignal]:
    eng = engine(profile="diabetes")
    for i in range(12):
        eng.evaluate(reading(Kind.GLUCOSE, 120, T0 + minutes(5 * i)))
    if heartbeat:
        eng.heartbeat("gw-1", T0 + minutes(55))
    return eng.tick(T0 + minutes(55) + after)


_flat = [80.3 if i % 2 else 79.7 for i in range(30)]

# message key -> a scenario whose signals include it
SCENARIOS: dict[str, Callable[[], list[AlertSignal]]] = {
    "dm.hypoglycaemia.level1": lambda: _one(Kind.GLUCOSE, 62),
    "dm.hypoglycaemia.level2": lambda: _one(Kind.GLUCOSE, 48),
    "dm.hyperglycaemia": lambda: _one(Kind.GLUCOSE, 301),
    "dm.hyper_sustained": lambda: _glucose([260.0] * 25),
    "dm.fast_fall": lambda: _glucose([200.0 - 12.5 * i for i in range(7)]),
    "dm.urgent_low_soon": lambda: _glucose([100, 80]),
    "dm.time_in_range": _tir,
    "hf.weight_gain": lambda: feed(engine(), weights([80.0, 80.0, 80.0, 82.3])),
    "hf.weight_baseline": lambda: feed(engine(), weights([*_flat[:28], 82.5])),
    "hf.weight_trend": lambda: feed(engine(), weights(
        _flat + [80.0 + 0.15 * i for i in range(1, 15)])),
    "hf.bp_systolic.above": lambda: _one(Kind.BP_SYSTOLIC, 185),
    "hf.bp_systolic.below": lambda: _one(Kind.BP_SYSTOLIC, 75),
    "hf.bp_diastolic.above": lambda: _one(Kind.BP_DIASTOLIC, 101),
    "hf.bp_diastolic.below": lambda: _one(Kind.BP_DIASTOLIC, 55),
    "hf.heart_rate.above": lambda: _one(Kind.HEART_RATE, 121),
    "hf.heart_rate.below": lambda: _one(Kind.HEART_RATE, 38),
    "hf.spo2.below": lambda: _one(Kind.SPO2, 91.5),
    "hf.nt_probnp_rise": lambda: feed(engine(), [reading(Kind.NT_PROBNP, 1000, T0),
                                                 reading(Kind.NT_PROBNP, 1450, T0 + days(30))]),
    "nutrition.weight_loss.moderate": lambda: _loss(5.1),
    "nutrition.weight_loss.severe": lambda: _loss(10.1),
    "silence.weight.last": lambda: _silence("heart_failure", Kind.WEIGHT, days(4.25)),
    "silence.weight.never": lambda: _silence("heart_failure", None, days(3)),
    "silence.glucose.last": lambda: _silence("diabetes", Kind.GLUCOSE, days(3)),
    "silence.glucose.never": lambda: _silence("diabetes", None, days(3)),
    "silence.device": lambda: _cgm_then_tick(minutes(45)),
    "silence.gateway": lambda: _cgm_then_tick(days(0.25), heartbeat=True),
}


@cache
def emitted(key: str) -> tuple[AlertSignal, ...]:
    """The raised signals of ``key``'s scenario that carry ``key``."""
    return tuple(s for s in SCENARIOS[key]() if not s.clear and s.text is not None
                 and s.text.key == key)


def _same_placeholders(table: dict[str, dict[str, str]], key: str) -> set[str]:
    """The placeholders of ``key``'s templates, checked to be there in every language and
    the same in each."""
    templates = table[key]
    assert set(templates) == set(LANGUAGES), f"{key}: languages {sorted(templates)}"
    fields = {lang: placeholders(t) for lang, t in templates.items()}
    assert all(f == fields["en"] for f in fields.values()), f"{key}: placeholders differ {fields}"
    return fields["en"]


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_catalogue_entry_in_every_language_with_the_same_placeholders(key: str) -> None:
    fields = _same_placeholders(CATALOGUE, key)
    assert fields, f"{key}: a text without arguments"


def test_terms_cover_every_target_metric_in_every_language() -> None:
    metrics = {name for name, _, _ in ADULT_TARGETS + OLDER_TARGETS}
    assert metrics <= set(TERMS)
    assert all(set(TERMS[m]) == set(LANGUAGES) for m in TERMS)


@pytest.mark.parametrize("key", sorted(NOTICE))
def test_notification_words_in_every_language_with_the_same_placeholders(key: str) -> None:
    fields = _same_placeholders(NOTICE, key)
    args: dict[str, Arg] = {name: 2 if name == "n" else "x" for name in fields}
    for lang in LANGUAGES:
        assert "{" not in render_notice(key, lang, **args)


def test_notification_words_name_every_severity_and_change() -> None:
    assert {f"notify.severity.{s}" for s in Severity} <= set(NOTICE)
    assert {f"notify.change.{c}" for c in CHANGES} <= set(NOTICE)
    assert render_notice("notify.severity.warning", "fr") == "avertissement"
    assert render_notice("notify.subject", "fr", severity="URGENTE", escalated="",
                         patient="p-1", n=1, headline="h") == \
        "[Vigie] URGENTE : patient p-1, 1 alerte - h"
    with pytest.raises(MessageError):
        render_notice("notify.subject", "fr", severity="URGENTE")
    with pytest.raises(MessageError):
        render_notice("notify.footer", "de", key="k")


def test_the_rules_emit_exactly_the_catalogue_keys() -> None:
    assert set(SCENARIOS) == set(CATALOGUE) - {TARGET_ROW}


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_each_rule_text_renders_in_every_language(key: str) -> None:
    signals = emitted(key)
    assert signals, f"the scenario of {key} did not emit it"
    for sig in signals:
        assert sig.text is not None
        assert sig.message == sig.text.render("en"), "message is the English rendering"
        assert set(sig.text.kwargs) >= placeholders(CATALOGUE[key]["en"])
        for lang in LANGUAGES:
            out = sig.text.render(lang)
            assert out and "{" not in out, (lang, out)
            assert out == render_or(Text.from_json(sig.text.to_json()), lang, "?"), \
                "stored and read back, the text renders the same"


def _like(value: Arg) -> st.SearchStrategy[Any]:
    """Any argument of the type a rule gave."""
    if isinstance(value, tuple):
        row = st.tuples(st.sampled_from(sorted(TERMS)), st.sampled_from(["<", ">", "<="]),
                        st.floats(0, 100), st.floats(0, 100))
        return st.lists(row, min_size=1, max_size=6).map(tuple)
    if isinstance(value, str):
        return st.text(max_size=40)
    if isinstance(value, int):
        return st.integers(0, 10_000)
    return st.floats(-1e6, 1e6, allow_nan=False)


@pytest.mark.parametrize("key", sorted(SCENARIOS))
@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.data())
def test_any_arguments_of_the_rule_types_render(key: str, data: st.DataObject) -> None:
    sample = emitted(key)[0].text
    assert sample is not None
    args = {name: data.draw(_like(v), label=name) for name, v in sample.args}
    text = Text.of(key, args)
    for lang in LANGUAGES:
        assert text.render(lang)
    assert Text.from_json(text.to_json()) == text


def test_french_level_2_hypoglycaemia() -> None:
    (sig,) = emitted("dm.hypoglycaemia.level2")
    assert sig.text is not None
    fr = sig.text.render("fr")
    assert "hypoglycémie" in fr.lower() and "48" in fr
    assert fr == "Hypoglycémie de niveau 2 : 48 mg/dL (< 54)"
    assert sig.message == "level 2 hypoglycaemia 48 mg/dL (< 54)", "English as before"


def test_french_weight_gain_uses_the_decimal_comma() -> None:
    texts = {s.rule: s.text for s in emitted("hf.weight_gain")}
    three, one = texts["hf.weight_gain_3d"], texts["hf.weight_gain_1d"]
    assert three is not None and one is not None
    assert three.render("fr") == "Prise de poids de 2,3 kg en 3 jours (seuil 2 kg)"
    assert three.render("en") == "weight +2.3 kg in 3 day(s) (threshold 2 kg)"
    assert one.render("fr") == "Prise de poids de 2,3 kg en 1 jour (seuil 1,36 kg)"


def test_french_silence() -> None:
    text = emitted("silence.weight.last")[0].text
    assert text is not None
    assert text.render("fr").startswith("Aucune pesée depuis 4,2 jours")
    assert text.render("en") == "no weight for 3 days (last 4.2 days ago)"


def test_time_in_range_targets_in_both_languages() -> None:
    text = emitted("dm.time_in_range")[0].text
    assert text is not None
    assert "missed: below_70 3.0% (target < 1%)" in text.render("en")
    assert "temps < 70 mg/dL 3,0 % (objectif < 1 %)" in text.render("fr")


def test_missed_targets_keep_their_english_form() -> None:
    m = tir_metrics([50.0] * 2 + [65.0] * 3 + [120.0] * 75 + [200.0] * 15 + [300.0] * 5)
    assert missed_targets(m, older=True)[0] == "below_70 5.0% (target < 1%)"


def test_unknown_key_or_bad_arguments() -> None:
    with pytest.raises(MessageError):
        render("no.such.key", {})
    with pytest.raises(MessageError):
        render("dm.hyperglycaemia", {"value": 300.0})  # threshold missing
    with pytest.raises(MessageError):
        render("dm.hyperglycaemia", {"value": "high", "threshold": 250.0})
    assert render_or(Text.of("no.such.key"), "fr", "fallback") == "fallback"
    assert render_or(None, "fr", "fallback") == "fallback"


@pytest.mark.parametrize("stored", [None, 3, "x", {"key": 3}, {"key": "k", "args": []},
                                    {"key": "k", "args": {"a": None}},
                                    {"key": "k", "args": {"a": [1]}},
                                    {"key": "k", "args": {"a": [[{}]]}}])
def test_text_from_anything_else_is_none(stored: object) -> None:
    assert Text.from_json(stored) is None


@pytest.mark.parametrize("key", sorted(HISTORY))
def test_history_lines_in_every_language_with_the_same_placeholders(key: str) -> None:
    fields = _same_placeholders(HISTORY, key)
    args: dict[str, Arg] = {name: 2 for name in fields - {"text"}}
    hypo = Text.of("dm.hypoglycaemia.level2", {"value": 48.0, "threshold": 54.0})
    for lang in LANGUAGES:
        line = render_history(key, lang, hypo, "level 2 hypoglycaemia 48 mg/dL (< 54)", **args)
        assert "{" not in line
        if "text" in fields:
            assert hypo.render(lang) in line
    # an alert stored without a key: its English message in every language
    assert render_history("history.worse", "fr", None, "old words") == "aggravation : old words"
