"""The rule catalogue. ``default_rules()`` returns one instance of each rule, in a fixed order
(evaluation order, hence signal order, is deterministic).

| id | family | ladder | source |
|---|---|---|---|
| hf.weight_gain_1d | hf_weight | info | Zhang 2009 (TEN-HMS): 1.36 kg / 1 day |
| hf.weight_gain_3d | hf_weight | warning | ESC: > 2 kg / 3 days (the classic rule) |
| hf.weight_baseline | hf_weight | warning | Gyllensten: 2 kg over the 28-day mean |
| hf.weight_trend | hf_weight | warning | HeartPhone (Ledwidge 2013), weight MACD (Zhang 2009) |
| hf.bp_systolic, hf.heart_rate | hf_vitals | warning, urgent | TELBIL 2011; BEAT-HF 2014 |
| hf.bp_diastolic, hf.spo2 | hf_vitals | warning | TELBIL 2011 |
| hf.nt_probnp_rise | hf_biology | warning | > 30% rise (verify) |
| nutrition.weight_loss | nutrition | info, warning | HAS 2021, residents aged >= 70 |
| dm.hypoglycaemia | dm_glucose | warning, urgent | Battelino 2019: < 70 / < 54 mg/dL |
| dm.hyperglycaemia | dm_glucose | warning | Battelino 2019: > 250 mg/dL |
| dm.hyper_sustained | dm_glucose | warning | > 250 mg/dL for 2 h |
| dm.fast_fall | dm_cgm | info, warning | Dexcom: 2 / 3 mg/dL/min |
| dm.urgent_low_soon | dm_cgm | urgent | Dexcom; Nightscout AR2 |
| dm.time_in_range | dm_summary | info, warning | Battelino 2019 |
| silence.weight, silence.glucose | silence | warning | arrêtés 2023 (cannot be disabled) |
| silence.device, silence.gateway | silence | info, warning | Nightscout stale data; deadman |
"""

from __future__ import annotations

from typing import Any

from alerting.rules.base import RANK, BaseRule, Rule, RuleContext, RuleParams, SilenceRule
from alerting.rules.diabetes import (
    FastFall,
    Hyperglycaemia,
    Hypoglycaemia,
    SustainedHyperglycaemia,
    TimeInRange,
    UrgentLowSoon,
)
from alerting.rules.heart_failure import (
    DiastolicBounds,
    HeartRateBounds,
    NtProbnpRise,
    SpO2Low,
    SystolicBounds,
    Undernutrition,
    WeightAboveBaseline,
    WeightGain1d,
    WeightGain3d,
    WeightTrend,
)
from alerting.rules.silence import DeviceSilent, GatewaySilent, NoGlucose, NoWeight

__all__ = [
    "RANK",
    "BaseRule",
    "Rule",
    "RuleContext",
    "RuleParams",
    "SilenceRule",
    "default_rules",
    "low_glucose_rules",
]


def default_rules() -> list[BaseRule[Any]]:
    """One instance of every rule of the catalogue, in evaluation order."""
    return [
        WeightGain1d(), WeightGain3d(), WeightAboveBaseline(), WeightTrend(),
        SystolicBounds(), DiastolicBounds(), HeartRateBounds(), SpO2Low(), NtProbnpRise(),
        Undernutrition(),
        Hypoglycaemia(), Hyperglycaemia(), SustainedHyperglycaemia(), FastFall(),
        UrgentLowSoon(), TimeInRange(),
        NoWeight(), NoGlucose(), DeviceSilent(), GatewaySilent(),
    ]


def low_glucose_rules() -> frozenset[str]:
    """Rules whose alerts override any snooze (patients' request; Dexcom urgent low)."""
    return frozenset({Hypoglycaemia.id, UrgentLowSoon.id})
