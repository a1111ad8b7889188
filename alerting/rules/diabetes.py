"""Diabetes rules: hypo/hyperglycaemia levels, sustained highs, fast fall and "urgent low soon"
for CGM streams, 14-day time-in-range summary.

Sources: International Consensus on Time in Range (Battelino et al., Diabetes Care 2019),
Nightscout (cgm-remote-monitor simplealarms.js, ar2.js), Dexcom alert definitions; see
shared/reference/alert-rules.md. Glucose is in mg/dL (contract canonical unit).
"""

from __future__ import annotations

import bisect
import itertools
import math
from statistics import fmean
from typing import ClassVar

from pydantic import Field

from alerting.messages import TARGET_ROW, render
from alerting.rules.base import P, Rule, RuleContext, RuleParams, finding
from alerting.seam import Severity
from alerting.settings import PatientSettings, Profile
from alerting.state import DAY, HOUR, MINUTE, Finding, Sample
from vigie.contract import Kind


class _GlucoseRule(Rule[P]):
    kind = Kind.GLUCOSE
    family = "dm_glucose"
    stale_after: ClassVar[float | None] = 1 * HOUR  # an older glucose never pages
    late_after = 15 * MINUTE

    def applies(self, settings: PatientSettings) -> bool:
        return settings.has(Profile.DIABETES)


class HypoParams(RuleParams):
    l1: float = Field(default=70.0, ge=54.0, le=100.0)
    l2: float = Field(default=54.0, ge=40.0, le=70.0)
    clear_above: float = Field(default=80.0, ge=60.0, le=120.0)


class Hypoglycaemia(_GlucoseRule[HypoParams]):
    """Level 1 (< 70 mg/dL, warning) and level 2 (< 54 mg/dL, urgent) hypoglycaemia.

    Source: Battelino 2019 (levels); arrêtés 2023: severe hypoglycaemia below a
    physician-set threshold (override ``l2``). Clears at >= 80 mg/dL (Nightscout "low"
    default) so a value oscillating around 70 does not flap. Not stale after 1 h.
    """

    id = "dm.hypoglycaemia"
    ladder = (Severity.WARNING, Severity.URGENT)
    Params = HypoParams

    def lookback(self, params: HypoParams) -> float:
        return 0.0

    def evaluate(self, ctx: RuleContext[HypoParams]) -> Finding | None:
        value, p = ctx.current.value, ctx.params
        if value < p.l2:
            return finding(Severity.URGENT, value, "dm.hypoglycaemia.level2",
                           {"value": value, "threshold": p.l2})
        if value < p.l1:
            return finding(Severity.WARNING, value, "dm.hypoglycaemia.level1",
                           {"value": value, "threshold": p.l1})
        return None

    def cleared(self, ctx: RuleContext[HypoParams]) -> bool:
        return ctx.current.value >= ctx.params.clear_above


class HyperParams(RuleParams):
    l2: float = Field(default=250.0, ge=180.0, le=400.0)
    clear_below: float = Field(default=240.0, ge=150.0, le=400.0)


class Hyperglycaemia(_GlucoseRule[HyperParams]):
    """Level 2 hyperglycaemia: > 250 mg/dL (Battelino 2019, "above 250, level 2"); the
    arrêtés' mandatory out-of-target alert. Clears at <= 240 mg/dL (hysteresis)."""

    id = "dm.hyperglycaemia"
    ladder = (Severity.WARNING,)
    Params = HyperParams

    def lookback(self, params: HyperParams) -> float:
        return 0.0

    def evaluate(self, ctx: RuleContext[HyperParams]) -> Finding | None:
        value = ctx.current.value
        if value <= ctx.params.l2:
            return None
        return finding(Severity.WARNING, value, "dm.hyperglycaemia",
                       {"value": value, "threshold": ctx.params.l2})

    def cleared(self, ctx: RuleContext[HyperParams]) -> bool:
        return ctx.current.value <= ctx.params.clear_below


class SustainedParams(RuleParams):
    threshold: float = Field(default=250.0, ge=180.0, le=400.0)
    minutes: float = Field(default=120.0, ge=30.0, le=720.0)
    max_gap_minutes: float = Field(default=30.0, ge=5.0, le=120.0)


class SustainedHyperglycaemia(_GlucoseRule[SustainedParams]):
    """Glucose above 250 mg/dL for 2 hours without a gap over 30 minutes (CGM streams).

    Source: the "outside X for n minutes" sustained alarm asked for by patients and carers
    (Nightscout/Dexcom issues), with the level 2 bound of Battelino 2019. Duration and gap
    are Vigie defaults.
    """

    id = "dm.hyper_sustained"
    ladder = (Severity.WARNING,)
    Params = SustainedParams

    def lookback(self, params: SustainedParams) -> float:
        return (params.minutes + params.max_gap_minutes) * MINUTE

    def evaluate(self, ctx: RuleContext[SustainedParams]) -> Finding | None:
        p = ctx.params
        if ctx.current.value <= p.threshold:
            return None  # the run must include the current value: cheap exit
        span = p.minutes * MINUTE
        window = ctx.state.get(Kind.GLUCOSE).between(ctx.at - span - p.max_gap_minutes * MINUTE,
                                                     ctx.at)
        start = bisect.bisect_right([s.t for s in window], ctx.at - span) - 1
        if start < 0:
            return None
        run = window[start:]
        gaps_ok = all(b.t - a.t <= p.max_gap_minutes * MINUTE
                      for a, b in itertools.pairwise(run))
        if not gaps_ok or min(s.value for s in run) <= p.threshold:
            return None
        return finding(Severity.WARNING, ctx.current.value, "dm.hyper_sustained",
                       {"threshold": p.threshold, "minutes": p.minutes})


def _slope_per_min(samples: list[Sample]) -> float:
    """Least-squares slope in mg/dL per minute."""
    t0 = samples[0].t
    xs = [(s.t - t0) / MINUTE for s in samples]
    ys = [s.value for s in samples]
    mx, my = fmean(xs), fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


class FallParams(RuleParams):
    warn_rate: float = Field(default=2.0, ge=1.0, le=5.0)
    urgent_rate: float = Field(default=3.0, ge=1.0, le=6.0)
    minutes: float = Field(default=30.0, ge=10.0, le=60.0)
    max_gap_minutes: float = Field(default=10.0, ge=5.0, le=30.0)


class FastFall(_GlucoseRule[FallParams]):
    """CGM falling at >= 2 mg/dL/min (info) or >= 3 mg/dL/min (warning) over 30 minutes.

    Source: Dexcom fall alerts at 2 or 3 mg/dL/min. Needs a CGM stream (>= 3 samples in the
    window, gaps <= 10 min). The 30-minute least-squares window is a Vigie choice: over 15
    minutes CGM noise alone crossed 2 mg/dL/min ~190 times per patient-year on the synthetic
    cohort, over 30 minutes ~15. Stale after 10 minutes (Nightscout: fresh data only).
    """

    id = "dm.fast_fall"
    family = "dm_cgm"
    ladder = (Severity.INFO, Severity.WARNING)
    stale_after = 10 * MINUTE
    late_after = 10 * MINUTE
    Params = FallParams

    def lookback(self, params: FallParams) -> float:
        return params.minutes * MINUTE

    def evaluate(self, ctx: RuleContext[FallParams]) -> Finding | None:
        p = ctx.params
        window = ctx.state.get(Kind.GLUCOSE).between(ctx.at - p.minutes * MINUTE, ctx.at)
        if len(window) < 3 or window[0].value - window[-1].value < p.warn_rate:
            return None  # not even falling a minute's worth: cheap exit
        gaps = [b.t - a.t for a, b in itertools.pairwise(window)]
        if max(gaps) > p.max_gap_minutes * MINUTE:
            return None
        fall = -_slope_per_min(window)
        if fall < p.warn_rate:
            return None
        severity = Severity.WARNING if fall >= p.urgent_rate else Severity.INFO
        return finding(severity, fall, "dm.fast_fall",
                       {"rate": fall, "value": ctx.current.value})


class LowSoonParams(RuleParams):
    threshold: float = Field(default=55.0, ge=40.0, le=80.0)
    horizon_minutes: float = Field(default=20.0, ge=5.0, le=60.0)


class UrgentLowSoon(_GlucoseRule[LowSoonParams]):
    """Forecast <= 55 mg/dL within 20 minutes: urgent.

    Source: Dexcom "Urgent Low Soon" (<= 55 mg/dL within 20 min); forecast by Nightscout's
    AR2 (ar2.js): on y = log(BG/140), y[n+1] = -0.723 y[n-1] + 1.716 y[n], steps of 5 min,
    from the last two CGM points 4-6 minutes apart. Stale after 10 minutes (Nightscout).
    """

    id = "dm.urgent_low_soon"
    family = "dm_cgm"
    ladder = (Severity.URGENT,)
    stale_after = 10 * MINUTE
    late_after = 10 * MINUTE
    Params = LowSoonParams
    AR: ClassVar[tuple[float, float]] = (-0.723, 1.716)
    BG_REF: ClassVar[float] = 140.0

    def lookback(self, params: LowSoonParams) -> float:
        return 6 * MINUTE

    def forecast(self, prev: float, curr: float, steps: int) -> list[float]:
        y0, y1 = math.log(prev / self.BG_REF), math.log(curr / self.BG_REF)
        out = []
        for _ in range(steps):
            y0, y1 = y1, self.AR[0] * y0 + self.AR[1] * y1
            out.append(self.BG_REF * math.exp(y1))
        return out

    def evaluate(self, ctx: RuleContext[LowSoonParams]) -> Finding | None:
        p, cur = ctx.params, ctx.current
        prev = ctx.state.get(Kind.GLUCOSE).before(cur)
        if prev is None or not 4 * MINUTE <= cur.t - prev.t <= 6 * MINUTE:
            return None
        if cur.value >= prev.value:
            return None  # AR2 from a flat or rising pair never falls under 55 from above
        if cur.value <= p.threshold:
            return None  # already low: the hypoglycaemia rule speaks
        steps = max(1, round(p.horizon_minutes / 5))
        predicted = self.forecast(prev.value, cur.value, steps)
        hit = next((i for i, v in enumerate(predicted) if v <= p.threshold), None)
        if hit is None:
            return None
        return finding(Severity.URGENT, predicted[hit], "dm.urgent_low_soon",
                       {"forecast": predicted[hit], "minutes": 5 * (hit + 1),
                        "value": cur.value})


class TirParams(RuleParams):
    days: float = Field(default=14.0, ge=7.0, le=90.0)
    min_coverage_pct: float = Field(default=70.0, ge=50.0, le=100.0)
    cgm_interval_minutes: float = Field(default=5.0, ge=1.0, le=15.0)


def tir_metrics(values: list[float]) -> dict[str, float]:
    """Consensus metrics (Battelino 2019) in percent of readings; GMI (Bergenstal 2018)."""
    n = len(values)
    mean = fmean(values)
    sd = math.sqrt(max(fmean([v * v for v in values]) - mean * mean, 0.0))  # fast pstdev

    def pct(cond: list[bool]) -> float:
        return 100 * sum(cond) / n

    return {
        "below_54": pct([v < 54 for v in values]),
        "below_70": pct([v < 70 for v in values]),
        "in_range": pct([70 <= v <= 180 for v in values]),
        "above_180": pct([v > 180 for v in values]),
        "above_250": pct([v > 250 for v in values]),
        "cv": 100 * sd / mean,
        "gmi": 3.31 + 0.02392 * mean,
    }


# (metric, comparison, target) per group: Battelino 2019 consensus table.
ADULT_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("below_54", "<", 1.0), ("below_70", "<", 4.0), ("in_range", ">", 70.0),
    ("above_180", "<", 25.0), ("above_250", "<", 5.0), ("cv", "<=", 36.0))
OLDER_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("below_70", "<", 1.0), ("in_range", ">", 50.0), ("above_250", "<", 10.0))
_HYPO_METRICS = frozenset({"below_54", "below_70"})


def missed_target_rows(metrics: dict[str, float], older: bool
                       ) -> list[tuple[str, str, float, float]]:
    """(metric, comparison, target, value) of each consensus target missed."""
    missed = []
    for name, op, target in OLDER_TARGETS if older else ADULT_TARGETS:
        value = metrics[name]
        ok = value < target if op == "<" else value > target if op == ">" else value <= target
        if not ok:
            missed.append((name, op, target, value))
    return missed


def missed_targets(metrics: dict[str, float], older: bool) -> list[str]:
    """The targets missed, in English: ``below_70 5.0% (target < 4%)``."""
    return [render(TARGET_ROW, {"metric": name, "op": op, "target": target, "value": value})
            for name, op, target, value in missed_target_rows(metrics, older)]


class TimeInRange(_GlucoseRule[TirParams]):
    """14-day CGM time-in-range summary at each local midnight, against the consensus
    targets (most adults: TIR > 70%, < 70 under 4%, < 54 under 1%, > 250 under 5%, CV <= 36%;
    older/high risk: TIR > 50%, < 70 under 1%, > 250 under 10%).

    Source: Battelino et al., Diabetes Care 2019; data sufficiency 14 days, > 70% of time.
    Warning when a hypoglycaemia target is missed, info otherwise.
    """

    id = "dm.time_in_range"
    family = "dm_summary"
    ladder = (Severity.INFO, Severity.WARNING)
    daily = True
    stale_after = None
    late_after = 30 * DAY  # a summary is never a page
    Params = TirParams

    def lookback(self, params: TirParams) -> float:
        return params.days * DAY

    def evaluate(self, ctx: RuleContext[TirParams]) -> Finding | None:
        p = ctx.params
        first, values = ctx.state.get(Kind.GLUCOSE).window(ctx.at - p.days * DAY,
                                                          ctx.at - 1e-6)
        if first is None or first > ctx.at - (p.days - 1) * DAY:
            return None  # fewer than the window's days of data: not a summary yet
        coverage = 100 * len(values) * p.cgm_interval_minutes * MINUTE / (p.days * DAY)
        if coverage < p.min_coverage_pct:
            return None
        metrics = tir_metrics(values)
        missed = missed_target_rows(metrics, ctx.settings.older_or_high_risk)
        if not missed:
            return None
        hypo = any(m[0] in _HYPO_METRICS for m in missed)
        return finding(Severity.WARNING if hypo else Severity.INFO, metrics["in_range"],
                       "dm.time_in_range", {"days": p.days, "in_range": metrics["in_range"],
                                            "gmi": metrics["gmi"], "missed": tuple(missed)})
