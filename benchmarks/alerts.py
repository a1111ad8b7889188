"""Benchmark the alert rules on the synthetic cohort with known outcomes.

    .venv/bin/python benchmarks/alerts.py                         # default, < 2 minutes
    .venv/bin/python benchmarks/alerts.py --patients 10000 --days 90   # the full figure
    .venv/bin/python benchmarks/alerts.py --plot weights.png      # needs matplotlib

Per rule (and per rule family), on firmware_sim.cohort:

- sensitivity per event: heart failure, an alert opened within the 14 days before the
  decompensation (or since its onset, when the gain started earlier); hypoglycaemia, an alert
  opened between 60 minutes before the glucose went under 70 mg/dL and the end of the episode;
- false alerts per patient-year: alerts opened outside every event window (benign gains are
  not events), over the follow-up of the patients the rule applies to;
- median lead time: event time minus the first alert in its window (days for heart
  failure, minutes for glucose; negative = after the glucose went under 70);
- throughput: readings evaluated per second (engine.evaluate + daily ticks, one engine per
  patient as a sharded deployment would have, cohort generation excluded).

Alerts are counted after the lifecycle's deduplication (one open alert per patient and rule
until the rule clears it). Rows "A | B" merge two rules (alerts within 7 days are one).
Reference figures: Zhang 2009, Abraham 2011 (FAST), Ledwidge 2013, Gyllensten 2016 in
shared/reference/alert-rules.md.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.engine import Engine
from alerting.lifecycle import AlertBook
from alerting.seam import AlertSignal
from alerting.settings import PatientSettings, RulesConfig, load_config
from firmware_sim.cohort import CohortOptions, Event, PatientData, patient
from vigie.contract import Kind, Reading

HF_RULES = ("hf.weight_gain_3d", "hf.weight_gain_1d", "hf.weight_baseline", "hf.weight_trend")
DM_RULES = ("dm.hypoglycaemia", "dm.urgent_low_soon", "dm.fast_fall")
COMBOS = (("hf.weight_trend", "hf.weight_baseline"),)
HF_BEFORE = timedelta(days=14)
HYPO_BEFORE = timedelta(minutes=60)


@dataclass(slots=True)
class Tally:
    """Alerts and events of one rule over the cohort."""

    events: int = 0
    detected: int = 0
    false_alerts: int = 0
    years: float = 0.0
    leads: list[float] = field(default_factory=list)

    def row(self, name: str, unit: str) -> str:
        sens = 100 * self.detected / self.events if self.events else float("nan")
        fa = self.false_alerts / self.years if self.years else float("nan")
        lead = statistics.median(self.leads) if self.leads else float("nan")
        return (f"{name:42s} {self.events:7d} {sens:9.1f}% {fa:12.2f} {lead:9.1f} {unit}")


@dataclass(slots=True)
class Run:
    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    readings: int = 0
    seconds: float = 0.0
    traces: list[tuple[PatientData, dict[str, list[datetime]]]] = field(default_factory=list)


def to_reading(index: int, pid: str, kind: str, value: float, at: datetime,
               device: str) -> Reading:
    return Reading(id=f"{pid}:{index}", gateway_id="bench", device_id=device, patient_id=pid,
                   stream_seq=index, kind=Kind(kind), value=value,
                   unit="kg" if kind == "weight" else "mg/dL", measured_at=at, received_at=at,
                   device_time=None, clock_offset_s=0.0, time_zone=None, time_trusted=True)


def replay_patient(data: PatientData, run: Run, base: RulesConfig) -> dict[str, list[datetime]]:
    """Feed one patient's readings (time order, daily ticks); return alert opening times by
    rule (measurement time of the reading that raised them)."""
    spec = data.spec
    settings = PatientSettings.model_validate(spec.settings())
    config = base.model_copy(update={"patients": {spec.id: settings}})
    engine, book = Engine(config), AlertBook()
    readings = [to_reading(i, r.patient, r.kind, r.value, r.time, r.device)
                for i, r in enumerate(data.readings)]
    opened: dict[str, list[datetime]] = defaultdict(list)
    started = time.perf_counter()
    day = None
    for reading in readings:
        signals: list[AlertSignal] = []
        today = reading.measured_at.date()
        if today != day:
            day = today
            signals += engine.tick(reading.measured_at.replace(hour=0, minute=0, second=0,
                                                               microsecond=0))
        signals += engine.evaluate(reading)
        for signal in signals:
            change = book.on_signal(signal, reading.measured_at)
            if change is not None and change.kind == "opened":
                opened[signal.rule].append(signal.time)
    run.seconds += time.perf_counter() - started
    run.readings += len(readings)
    return opened


def merged(times: Iterable[datetime], gap: timedelta = timedelta(days=7)) -> list[datetime]:
    out: list[datetime] = []
    for t in sorted(times):
        if not out or t - out[-1] > gap:
            out.append(t)
    return out


def score(tally: Tally, alerts: list[datetime], windows: list[tuple[datetime, datetime]],
          event_times: list[datetime], years: float, unit: timedelta) -> None:
    """Count detections, lead times and false alerts of one rule for one patient."""
    tally.years += years
    tally.events += len(windows)
    for (start, end), event_time in zip(windows, event_times, strict=True):
        lo = bisect.bisect_left(alerts, start)
        if lo < len(alerts) and alerts[lo] <= end:
            tally.detected += 1
            tally.leads.append((event_time - alerts[lo]) / unit)
    tally.false_alerts += sum(1 for a in alerts
                              if not any(s <= a <= e for s, e in windows))


def hf_windows(events: list[Event]) -> tuple[list[tuple[datetime, datetime]], list[datetime]]:
    decomp = [e for e in events if e.kind == "decompensation"]
    return ([(min(e.onset, e.time - HF_BEFORE), e.time) for e in decomp],
            [e.time for e in decomp])


def hypo_windows(events: list[Event]) -> tuple[list[tuple[datetime, datetime]], list[datetime]]:
    hypos = [e for e in events if e.kind == "hypoglycaemia"]
    return [(e.time - HYPO_BEFORE, e.end) for e in hypos], [e.time for e in hypos]


def follow_up_years(data: PatientData, days: int) -> float:
    stays = sum((e.end - e.time).days for e in data.events if e.kind == "decompensation")
    return max(days - stays, 0) / 365.25


def score_patient(data: PatientData, opened: dict[str, list[datetime]], days: int
                  ) -> dict[str, Tally]:
    """The tallies of one patient, per rule (and per merged pair of rules)."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    years = follow_up_years(data, days)
    if data.spec.profile == "heart_failure":
        windows, times = hf_windows(data.events)
        for rule in HF_RULES:
            score(tallies[rule], opened.get(rule, []), windows, times, years, timedelta(days=1))
        for combo in COMBOS:
            alerts = merged(t for rule in combo for t in opened.get(rule, []))
            score(tallies[" | ".join(combo)], alerts, windows, times, years, timedelta(days=1))
        return tallies
    windows, times = hypo_windows(data.events)
    mode = "cgm" if data.spec.cgm else "capillary"
    for rule in DM_RULES:
        if mode == "cgm" or rule == "dm.hypoglycaemia":
            score(tallies[f"{rule} ({mode})"], opened.get(rule, []), windows, times, years,
                  timedelta(minutes=1))
    return tallies


PatientResult = tuple[dict[str, Tally], int, float, PatientData | None,
                      dict[str, list[datetime]]]
_JOB: tuple[CohortOptions, RulesConfig] | None = None


def _init(opts: CohortOptions, base: RulesConfig) -> None:
    global _JOB
    _JOB = (opts, base)


def one_patient(index: int) -> PatientResult:
    """Generate, replay and score patient ``index`` (runs in a worker process)."""
    assert _JOB is not None, "worker not initialised"
    opts, base = _JOB
    data = patient(opts, index)
    run = Run()
    opened = replay_patient(data, run, base)
    keep = data.spec.profile == "heart_failure" and any(
        e.kind == "decompensation" for e in data.events)
    return (dict(score_patient(data, opened, opts.days)), run.readings, run.seconds,
            data if keep else None, dict(opened) if keep else {})


def evaluate_cohort(opts: CohortOptions, plot_traces: int = 0,
                    base: RulesConfig | None = None, jobs: int = 1) -> Run:
    """Replay the whole cohort, patients spread over ``jobs`` processes."""
    run = Run()
    base = base or RulesConfig()
    if jobs <= 1:
        _init(opts, base)
        results: Iterable[PatientResult] = map(one_patient, range(opts.patients))
        return _collect(run, results, plot_traces)
    with multiprocessing.get_context("fork").Pool(jobs, _init, (opts, base)) as pool:
        return _collect(run, pool.imap(one_patient, range(opts.patients), chunksize=8),
                        plot_traces)


def _collect(run: Run, results: Iterable[PatientResult], plot_traces: int) -> Run:
    for tallies, readings, seconds, data, opened in results:
        for name, tally in tallies.items():
            total = run.tallies[name]
            total.events += tally.events
            total.detected += tally.detected
            total.false_alerts += tally.false_alerts
            total.years += tally.years
            total.leads += tally.leads
        run.readings += readings
        run.seconds += seconds
        if data is not None and len(run.traces) < plot_traces:
            run.traces.append((data, opened))
    return run


def print_table(run: Run, opts: CohortOptions) -> None:
    print(f"cohort: {opts.patients} patients x {opts.days} days, seed {opts.seed}")
    print(f"{'rule':42s} {'events':>7s} {'sensitiv.':>10s} {'false/pt-yr':>12s} "
          f"{'med. lead':>9s}")
    print("-- heart failure: decompensation (alert within 14 days before admission)")
    for name in (*HF_RULES, *(" | ".join(c) for c in COMBOS)):
        label = f"{name}{' (classic)' if name == 'hf.weight_gain_3d' else ''}"
        print(run.tallies[name].row(label, "days"))
    print("-- diabetes: hypoglycaemia (alert from 60 min before < 70 mg/dL to episode end)")
    for name in sorted(k for k in run.tallies if k.startswith("dm.")):
        print(run.tallies[name].row(name, "min"))
    rate = run.readings / run.seconds if run.seconds else float("nan")
    print(f"throughput: {run.readings} readings in {run.seconds:.1f} s of rule evaluation = "
          f"{rate:,.0f} readings/s per core")


def plot(run: Run, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: .venv/bin/pip install matplotlib", file=sys.stderr)
        return
    fig, axes = plt.subplots(len(run.traces), 1, figsize=(11, 2.6 * len(run.traces)),
                             squeeze=False)
    marks = {"hf.weight_gain_3d": ("v", "tab:red"), "hf.weight_trend": ("^", "tab:green"),
             "hf.weight_baseline": ("s", "tab:blue")}
    for ax, (data, opened) in zip(axes[:, 0], run.traces, strict=True):
        times = [r.time for r in data.readings]
        values = [r.value for r in data.readings]
        ax.plot(times, values, ".-", color="0.5", lw=0.6, ms=2)
        for event in data.events:
            color = "tab:red" if event.kind == "decompensation" else "tab:orange"
            ax.axvspan(event.onset, event.time, color=color, alpha=0.15)
            if event.kind == "decompensation":
                ax.axvline(event.time, color="tab:red", lw=1)
        top = max(values)
        for i, (rule, (marker, color)) in enumerate(marks.items()):
            hits = opened.get(rule, [])
            ax.plot(hits, [top + 0.6 + 0.6 * i] * len(hits), marker, color=color, label=rule)
        ax.set_ylabel(f"{data.spec.id} kg")
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=3)
    axes[0, 0].set_title("weight, decompensation (red span: onset to admission), benign gain "
                         "(orange), alerts opened")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cgm-fraction", type=float, default=0.1,
                        help="share of diabetic patients on CGM (5-min streams dominate the "
                        "run time)")
    parser.add_argument("--plot", type=Path, help="write a PNG of a few weight traces")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--rules", type=Path, help="rules file (TOML/JSON) with threshold "
                        "overrides to try")
    args = parser.parse_args(argv)
    opts = CohortOptions(patients=args.patients, days=args.days, seed=args.seed,
                         cgm_fraction=args.cgm_fraction)
    base = load_config(args.rules) if args.rules else RulesConfig()
    started = time.perf_counter()
    run = evaluate_cohort(opts, plot_traces=4 if args.plot else 0, base=base, jobs=args.jobs)
    print(f"wall time {time.perf_counter() - started:.1f} s with {args.jobs} job(s)")
    print_table(run, opts)
    if args.plot:
        plot(run, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
