"""Heart-failure rules: weight gain (absolute, against baseline, trend), vital-sign bounds,
NT-proBNP rise, undernutrition weight loss (age 70+).

Sources are in shared/reference/alert-rules.md ("Heart failure: weight", "vitals and
symptoms"); each class names the one it rests on.
"""

from __future__ import annotations

import math
from statistics import fmean, pstdev
from typing import ClassVar

from pydantic import Field

from alerting.rules.base import P, Rule, RuleContext, RuleParams, finding
from alerting.seam import Severity
from alerting.settings import PatientSettings, Profile
from alerting.state import DAY, HOUR, Finding, Sample, Series
from vigie.contract import Kind


class _HeartFailureRule(Rule[P]):
    def applies(self, settings: PatientSettings) -> bool:
        return settings.has(Profile.HEART_FAILURE)


def _reference(series: Series, t: float, days: float) -> Sample | None:
    """The weight of ``days`` earlier (Zhang 2009: "previous day", "3 days earlier"): the
    latest sample within 12 hours of t - days; None when that day was missed."""
    ref = series.last_at_or_before(t - days * DAY + 12 * HOUR)
    return ref if ref is not None and ref.t >= t - days * DAY - 12 * HOUR else None


def _kg(x: float) -> float:
    """Round away float noise (81.36 - 80.0 = 1.3599999...) before comparing to bounds."""
    return round(x, 6)


class GainParams(RuleParams):
    kg: float = Field(default=2.0, ge=0.5, le=10.0)
    days: float = Field(default=3.0, ge=1.0, le=14.0)


class Gain1dParams(GainParams):
    kg: float = Field(default=1.36, ge=0.5, le=10.0)
    days: float = Field(default=1.0, ge=1.0, le=3.0)


class _WeightGain(_HeartFailureRule[GainParams]):
    kind = Kind.WEIGHT
    family = "hf_weight"
    level: ClassVar[Severity]

    def lookback(self, params: GainParams) -> float:
        return params.days * DAY + 12 * HOUR

    def evaluate(self, ctx: RuleContext[GainParams]) -> Finding | None:
        params = ctx.params
        ref = _reference(ctx.state.get(Kind.WEIGHT), ctx.at, params.days)
        gain = _kg(ctx.current.value - ref.value) if ref is not None else -math.inf
        if gain < params.kg:
            return None
        return finding(self.level, gain, "hf.weight_gain",
                       {"gain": gain, "days": params.days, "threshold": params.kg})


class WeightGain1d(_WeightGain):
    """Gain >= 1.36 kg (3 lb) against the previous day's weight; lower severity.

    Source: Zhang et al., Eur J Heart Fail 2009 (TEN-HMS), "3 lb in 1 day".
    """

    id = "hf.weight_gain_1d"
    ladder = (Severity.INFO,)
    level = Severity.INFO
    Params = Gain1dParams


class WeightGain3d(_WeightGain):
    """Gain >= 2 kg against the weight of 3 days earlier: the classic rule of thumb.

    Source: ESC patient guidance (heartfailurematters.org), "> 2 kg in 3 days"; Zhang 2009 and
    FAST (Abraham 2011) used 2.27 kg (5 lb) in 3 days. Sensitivity is poor (11% of
    decompensations, Gyllensten): kept because patients are taught it.
    """

    id = "hf.weight_gain_3d"
    ladder = (Severity.WARNING,)
    level = Severity.WARNING
    Params = GainParams


class BaselineParams(RuleParams):
    kg: float = Field(default=2.0, ge=0.5, le=10.0)
    baseline_days: float = Field(default=28.0, ge=7.0, le=90.0)
    min_samples: int = Field(default=7, ge=3, le=90)


class WeightAboveBaseline(_HeartFailureRule[BaselineParams]):
    """Weight >= 2 kg above the mean of the previous 28 days (the patient's own baseline).

    Source: Gyllensten et al. (EJHF abstract): 39% of decompensations vs 11% for 2 kg/3 days.
    The baseline needs ``min_samples`` weighings (warm-up).
    """

    id = "hf.weight_baseline"
    kind = Kind.WEIGHT
    family = "hf_weight"
    ladder = (Severity.WARNING,)
    Params = BaselineParams

    def lookback(self, params: BaselineParams) -> float:
        return params.baseline_days * DAY

    def evaluate(self, ctx: RuleContext[BaselineParams]) -> Finding | None:
        params = ctx.params
        base = ctx.state.get(Kind.WEIGHT).values(ctx.at - params.baseline_days * DAY,
                                                 ctx.at - 12 * HOUR)
        if len(base) < params.min_samples:
            return None
        gain = _kg(ctx.current.value - fmean(base))
        if gain < params.kg:
            return None
        return finding(Severity.WARNING, gain, "hf.weight_baseline",
                       {"gain": gain, "days": params.baseline_days, "threshold": params.kg})


class TrendParams(RuleParams):
    short_days: float = Field(default=3.0, ge=1.0, le=7.0)
    long_days: float = Field(default=28.0, ge=7.0, le=90.0)
    gap_days: float = Field(default=3.0, ge=0.0, le=14.0)
    z: float = Field(default=3.0, ge=1.0, le=10.0)
    min_kg: float = Field(default=1.5, ge=0.3, le=5.0)
    min_short: int = Field(default=2, ge=1, le=7)
    min_long: int = Field(default=10, ge=5, le=90)
    confirm: int = Field(default=2, ge=1, le=5)


class WeightTrend(_HeartFailureRule[TrendParams]):
    """Short moving average against the patient's long moving average and own day-to-day
    variability: alert when mean(last ``short_days``) - mean(``long_days`` window ending
    ``gap_days`` earlier) >= ``min_kg`` and >= ``z`` standard errors of that difference.

    Source: moving average with deviation, individualised (HeartPhone, Ledwidge 2013: 82%
    sensitivity vs 21% for 2 kg/2-3 days); short vs long moving averages as in the weight
    MACD (Zhang 2009; Gyllensten 2016). Parameters tuned on the synthetic cohort
    (benchmarks/alerts.py), not taken from those studies.
    """

    id = "hf.weight_trend"
    kind = Kind.WEIGHT
    family = "hf_weight"
    ladder = (Severity.WARNING,)
    Params = TrendParams

    def lookback(self, params: TrendParams) -> float:
        span = params.long_days + params.gap_days + params.short_days
        return (span + params.confirm + 1) * DAY

    def _hit(self, series: Series, at: float, p: TrendParams) -> tuple[float, float] | None:
        """(delta, delta in standard errors) at ``at`` when over both bounds, else None."""
        short = series.values(at - p.short_days * DAY + HOUR, at)
        long_end = at - (p.short_days + p.gap_days) * DAY + HOUR
        long = series.values(long_end - p.long_days * DAY, long_end)
        if len(short) < p.min_short or len(long) < p.min_long:
            return None
        delta = fmean(short) - fmean(long)
        stderr = max(pstdev(long), 0.2) * math.sqrt(1 / len(short) + 1 / len(long))
        return (delta, delta / stderr) if delta >= p.min_kg and delta >= p.z * stderr else None

    def evaluate(self, ctx: RuleContext[TrendParams]) -> Finding | None:
        """Fires when this weighing and the ``confirm - 1`` before it (within as many days
        plus one) are all hits: HeartPhone's "escalate after N hits" against noise."""
        p = ctx.params
        series = ctx.state.get(Kind.WEIGHT)
        cur = ctx.current
        recent = [s for s in series.between(ctx.at - (p.confirm + 1) * DAY, ctx.at)
                  if (s.t, s.id) <= (cur.t, cur.id)][-p.confirm:]
        if len(recent) < p.confirm:
            return None
        hits = [self._hit(series, s.t, p) for s in recent]
        last = hits[-1]
        if last is None or None in hits:
            return None
        delta, z = last
        return finding(Severity.WARNING, delta, "hf.weight_trend",
                       {"delta": delta, "short_days": p.short_days, "long_days": p.long_days,
                        "z": z, "confirm": p.confirm})


class Bounds(RuleParams):
    """Warning bounds (TELBIL) and urgent bounds with/without symptoms (BEAT-HF)."""


class SystolicParams(Bounds):
    warn_low: float = Field(default=100, ge=60, le=140)
    warn_high: float = Field(default=160, ge=120, le=220)
    urgent_low_symptoms: float = Field(default=90, ge=60, le=140)
    urgent_high_symptoms: float = Field(default=160, ge=120, le=240)
    urgent_low: float = Field(default=80, ge=50, le=140)
    urgent_high: float = Field(default=170, ge=120, le=260)
    margin: float = Field(default=5, ge=0, le=30)


class DiastolicParams(Bounds):
    warn_low: float = Field(default=60, ge=30, le=90)
    warn_high: float = Field(default=95, ge=70, le=140)
    margin: float = Field(default=5, ge=0, le=30)


class HeartRateParams(Bounds):
    warn_low: float = Field(default=50, ge=30, le=80)
    warn_high: float = Field(default=100, ge=70, le=160)
    urgent_low_symptoms: float = Field(default=50, ge=25, le=80)
    urgent_high_symptoms: float = Field(default=100, ge=70, le=180)
    urgent_low: float = Field(default=40, ge=25, le=80)
    urgent_high: float = Field(default=110, ge=70, le=200)
    margin: float = Field(default=5, ge=0, le=30)


class SpO2Params(Bounds):
    warn_low: float = Field(default=95, ge=80, le=98)
    warn_low_chronic_lung: float = Field(default=88, ge=80, le=95)
    margin: float = Field(default=1, ge=0, le=5)


class _VitalBounds(_HeartFailureRule[Bounds]):
    """Level rule on a vital sign: urgent outside the BEAT-HF bounds (tighter when the patient
    reports symptoms), warning outside the TELBIL bounds. A spot value older than 6 h is
    stale: it never fires."""

    family = "hf_vitals"
    ladder: ClassVar[tuple[Severity, ...]] = (Severity.WARNING, Severity.URGENT)
    stale_after = 6 * HOUR
    late_after = 1 * HOUR
    unit: ClassVar[str]

    def lookback(self, params: Bounds) -> float:
        return 0.0

    def _limits(self, ctx: RuleContext[Bounds]) -> list[tuple[Severity, float, float]]:
        p = ctx.params.model_dump()
        limits = []
        if "urgent_low" in p:
            sym = "_symptoms" if ctx.settings.symptoms else ""
            limits.append((Severity.URGENT, p[f"urgent_low{sym}"], p[f"urgent_high{sym}"]))
        limits.append((Severity.WARNING, p["warn_low"], p.get("warn_high", math.inf)))
        return limits

    def evaluate(self, ctx: RuleContext[Bounds]) -> Finding | None:
        value = ctx.current.value
        for severity, low, high in self._limits(ctx):
            if value < low or value > high:
                side = "below" if value < low else "above"
                bound = low if value < low else high
                return finding(severity, value, f"{self.id}.{side}",
                               {"value": value, "bound": bound})
        return None

    def cleared(self, ctx: RuleContext[Bounds]) -> bool:
        """Hysteresis: clear only once back inside the warning bounds by ``margin``."""
        p = ctx.params.model_dump()
        _, low, high = self._limits(ctx)[-1]
        value = ctx.current.value
        return bool(low + p["margin"] <= value <= high - p["margin"])


class SystolicBounds(_VitalBounds):
    """Systolic BP. Urgent: with symptoms < 90 or > 160, without < 80 or > 170 mmHg
    (BEAT-HF, Trials 2014). Warning: < 100 or > 160 mmHg (TELBIL, BMC HSR 2011)."""

    id = "hf.bp_systolic"
    kind = Kind.BP_SYSTOLIC
    unit = "mmHg"
    Params = SystolicParams


class DiastolicBounds(_VitalBounds):
    """Diastolic BP. Warning: < 60 or > 95 mmHg (TELBIL, BMC HSR 2011)."""

    id = "hf.bp_diastolic"
    kind = Kind.BP_DIASTOLIC
    unit = "mmHg"
    ladder = (Severity.WARNING,)
    Params = DiastolicParams


class HeartRateBounds(_VitalBounds):
    """Heart rate. Urgent: with symptoms < 50 or > 100, without < 40 or > 110 /min (BEAT-HF).
    Warning: < 50 or > 100 /min (TELBIL)."""

    id = "hf.heart_rate"
    kind = Kind.HEART_RATE
    unit = "/min"
    Params = HeartRateParams


class SpO2Low(_VitalBounds):
    """SpO2. Warning: < 95% (TELBIL), or < 88% with chronic lung disease (the reference says
    "adjusted for chronic lung disease"; 88% is the low end of the BTS 2017 88-92% target for
    patients at risk of hypercapnia: not in alert-rules.md, verify)."""

    id = "hf.spo2"
    kind = Kind.SPO2
    unit = "%"
    ladder = (Severity.WARNING,)
    Params = SpO2Params

    def _limits(self, ctx: RuleContext[Bounds]) -> list[tuple[Severity, float, float]]:
        p = ctx.params.model_dump()
        low = p["warn_low_chronic_lung"] if ctx.settings.chronic_lung_disease else p["warn_low"]
        return [(Severity.WARNING, low, math.inf)]


class ProbnpParams(RuleParams):
    rise_pct: float = Field(default=30.0, ge=10.0, le=200.0)
    min_rise: float = Field(default=100.0, ge=0.0, le=5000.0)
    within_days: float = Field(default=180.0, ge=7.0, le=365.0)


class NtProbnpRise(_HeartFailureRule[ProbnpParams]):
    """NT-proBNP (POC analyzer) risen >= 30% and >= 100 pg/mL over the previous value.

    Source: not in alert-rules.md. A change above ~30% is commonly taken as exceeding
    biological variation of natriuretic peptides; verify with the cardiologists.
    """

    id = "hf.nt_probnp_rise"
    kind = Kind.NT_PROBNP
    family = "hf_biology"
    ladder = (Severity.WARNING,)
    late_after = 7 * DAY
    Params = ProbnpParams

    def lookback(self, params: ProbnpParams) -> float:
        return params.within_days * DAY

    def evaluate(self, ctx: RuleContext[ProbnpParams]) -> Finding | None:
        p = ctx.params
        prev = ctx.state.get(Kind.NT_PROBNP).before(ctx.current)
        if prev is None or prev.t < ctx.at - p.within_days * DAY or prev.value <= 0:
            return None
        rise = ctx.current.value - prev.value
        pct = 100 * rise / prev.value
        if rise < p.min_rise or pct < p.rise_pct:
            return None
        return finding(Severity.WARNING, ctx.current.value, "hf.nt_probnp_rise",
                       {"value": ctx.current.value, "pct": pct, "previous": prev.value})


class UndernutritionParams(RuleParams):
    min_age: int = Field(default=70, ge=60, le=90)
    moderate_1m_pct: float = Field(default=5.0, ge=2.0, le=20.0)
    severe_1m_pct: float = Field(default=10.0, ge=2.0, le=30.0)
    moderate_6m_pct: float = Field(default=10.0, ge=2.0, le=30.0)
    severe_6m_pct: float = Field(default=15.0, ge=2.0, le=40.0)


class Undernutrition(Rule[UndernutritionParams]):
    """Weight loss >= 5% in 1 month or >= 10% in 6 months (severe: >= 10% / >= 15%) for
    nursing-home residents aged 70+ (``resident`` in the patient's settings).

    Source: HAS 2021 undernutrition criteria for people aged 70 and over. The current weight
    is the mean of the last 7 days; the usual weight the mean of the week 1 or 6 months ago.
    Residents only: at home, a heart-failure patient's loss of a few kilograms is mostly the
    fluid a diuretic removed, which this rule would call undernutrition.
    """

    id = "nutrition.weight_loss"
    kind = Kind.WEIGHT
    family = "nutrition"
    ladder = (Severity.INFO, Severity.WARNING)
    late_after = 7 * DAY
    Params = UndernutritionParams
    MONTH: ClassVar[float] = 30 * DAY

    def applies(self, settings: PatientSettings) -> bool:
        return settings.resident and settings.age is not None  # age bound: min_age

    def lookback(self, params: UndernutritionParams) -> float:
        return 6 * self.MONTH + 7 * DAY

    def _loss_pct(self, series: Series, at: float, months: int) -> float | None:
        now = series.values(at - 7 * DAY, at)
        then_end = at - months * self.MONTH
        usual = series.values(then_end - 7 * DAY, then_end)
        if not now or not usual:
            return None
        return 100 * (fmean(usual) - fmean(now)) / fmean(usual)

    def evaluate(self, ctx: RuleContext[UndernutritionParams]) -> Finding | None:
        p = ctx.params
        if ctx.settings.age is None or ctx.settings.age < p.min_age:
            return None
        series = ctx.state.get(Kind.WEIGHT)
        one, six = self._loss_pct(series, ctx.at, 1), self._loss_pct(series, ctx.at, 6)
        one_v, six_v = one if one is not None else -math.inf, six if six is not None else -math.inf
        if one_v >= p.severe_1m_pct or six_v >= p.severe_6m_pct:
            severity, grade = Severity.WARNING, "severe"
        elif one_v >= p.moderate_1m_pct or six_v >= p.moderate_6m_pct:
            severity, grade = Severity.INFO, "moderate"
        else:
            return None
        loss = max(one_v, six_v)
        return finding(severity, loss, f"{self.id}.{grade}",
                       {"loss": loss, "months": 1 if one_v >= six_v else 6})
