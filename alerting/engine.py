"""The rule engine: per-patient state by measurement time, rules evaluated at points in that
time, signals out. Pure Python, no I/O: it is fed readings (``evaluate``) and clock ticks
(``tick``), and implements ``alerting.seam.Evaluator``.

Guarantees, and how:

- Order-independent results. Each rule's result at a point (a sample's measurement time, or a
  local midnight of the engine's ``day_zone`` for daily summaries) depends only on the
  samples at or before it within the rule's look-back. A reading inserted in the past
  re-evaluates the later points within that look-back, so the ledger of findings
  (``findings()``) is the same whatever the arrival order.
- Late is not now. A finding whose point is older than the rule's ``late_after`` (age taken
  against the reading's receive time or the engine clock, whichever is later) is signalled
  with ``late=True`` and never above warning: a three-day-old weight is not an urgent page.
  Level rules (glucose, vitals) have ``stale_after``: older values fire nothing at all.
- Idempotent. A reading id already evaluated is ignored (ingest may redeliver). A reading
  the warm-up loaded from history is evaluated once when it is delivered itself: a worker
  killed between its InfluxDB write and its alert transaction left it stored, unevaluated,
  and its redelivery may come after later readings of the same patient.
- Deterministic. Rules run in catalogue order, points in time order, patients in id order.
- Cost follows the work, not the population. A reading costs the same whatever the number
  of patients; a tick visits only the patients something is due for: those a reading,
  a settings change or a gateway's silence touched since the last tick, and those whose
  silence rule said when it could next change (``SilenceRule.due``, kept in a heap).
  Samples older than the engine clock minus the look-backs and a day are pruned as
  readings arrive (at most once an hour per series), and readings that old are ignored.
- Warm-up. An optional history loader ``(patient_id, kind, start, end) -> readings`` is
  called once per patient and kind, when the patient is first seen, to fill the windows.
  ``prepare(readings)`` lets a loader with a ``prefetch({patient_id: first_time})`` method
  learn about all the batch's new patients in one round trip first.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from pydantic import ValidationError

from alerting.rules import RANK, BaseRule, Rule, RuleContext, SilenceRule, default_rules
from alerting.seam import AlertSignal, Severity
from alerting.settings import (
    PatientSettings,
    RulesConfig,
    SettingsError,
    WarmUpError,
    check_config,
    check_patient,
    is_disabled,
    merged_overrides,
)
from alerting.state import DAY, HOUR, Finding, PatientState, Sample, Series, dt, ts
from vigie.contract import CANONICAL_UNIT, FUTURE_ALLOWANCE, Kind, Reading

__all__ = ["Engine", "HistoricReading", "HistoryLoader", "midnights"]

log = logging.getLogger(__name__)
_FUTURE_S = FUTURE_ALLOWANCE.total_seconds()


class HistoricReading(Protocol):
    """What the history loader returns: any object with these attributes (a ``Reading``,
    a row from InfluxDB...)."""

    @property
    def id(self) -> str: ...

    @property
    def value(self) -> float | None: ...

    @property
    def measured_at(self) -> datetime: ...


HistoryLoader = Callable[[str, Kind, datetime, datetime], Iterable[HistoricReading]]
Point = tuple[float, Sample | None]


def midnights(after: float, until: float, zone: tzinfo = UTC) -> list[float]:
    """The local midnights m of ``zone`` with after < m <= until (POSIX seconds). A day is
    24 hours in UTC, 23 or 25 on the nights a zone changes its clocks."""
    if zone is UTC:
        first = math.floor(after / DAY) + 1
        last = math.floor(until / DAY)
        return [d * DAY for d in range(first, last + 1)]
    out: list[float] = []
    day = datetime.fromtimestamp(after, zone).date()
    while True:
        day += timedelta(days=1)
        m = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        if m > until:
            return out
        if m > after:
            out.append(m)


class Engine:
    """Evaluate the rule catalogue over a stream of readings; see the module docstring."""

    def __init__(self, config: RulesConfig | None = None, *,
                 rules: Sequence[BaseRule[Any]] | None = None,
                 history_loader: HistoryLoader | None = None,
                 day_zone: tzinfo = UTC) -> None:
        """``day_zone``: where the daily summaries' days begin (the cloud's --day-zone)."""
        self._rules = list(default_rules() if rules is None else rules)
        self._by_id = {rule.id: rule for rule in self._rules}
        self._config = RulesConfig() if config is None else config
        check_config(self._config, self._by_id)
        self._point_rules: dict[Kind, list[Rule[Any]]] = {}
        for rule in self._rules:
            if isinstance(rule, Rule):
                self._point_rules.setdefault(rule.kind, []).append(rule)
        self._silence_rules = [r for r in self._rules if isinstance(r, SilenceRule)]
        self._loader = history_loader
        self._zone = day_zone
        self._patients: dict[str, PatientState] = {}
        # Each patient's own settings (from the rules file, then the care team's edits),
        # interned: patients with equal settings share one object and one set of cached
        # parameters and plans, keyed by the settings' canonical JSON ("" is the default).
        self._own: dict[str, str] = {}
        self._shared: dict[str, PatientSettings] = {"": self._config.default}
        self._users: dict[str, int] = {}
        self._params: dict[tuple[str, str], Any] = {}
        self._plans: dict[tuple[str, Kind], list[tuple[Rule[Any], Any]]] = {}
        self._lookbacks: dict[tuple[str, Kind], float] = {}
        for pid, patient in self._config.patients.items():
            self._adopt(pid, patient)
        self._clock: float | None = None
        # what the next tick must look at: patients touched since the last one, and a heap
        # of (time, patient) at which a silence rule's result may change
        self._touched: set[str] = set()
        self._due: list[tuple[float, str]] = []
        self._due_at: dict[str, float] = {}
        # gateways: last heard, the ones watched for silence (sent a heartbeat once), a heap
        # of the times they turn silent, the silent ones, and the patients behind each
        self._gateway_seen: dict[str, float] = {}
        self._heartbeat_gateways: set[str] = set()
        self._gateway_due: list[tuple[float, str]] = []
        self._gateway_pending: set[str] = set()  # gateways with an entry in that heap
        self._silent: frozenset[str] = frozenset()
        self._gateway_patients: dict[str, set[str]] = {}
        self._gateway_limit = self._gateway_silence_limit()

    # -- public surface ----------------------------------------------------------------

    @property
    def rules(self) -> list[BaseRule[Any]]:
        return list(self._rules)

    @property
    def clock(self) -> datetime | None:
        return None if self._clock is None else dt(self._clock)

    def prepare(self, readings: Sequence[Reading]) -> None:
        """Before evaluating a batch: hand the patients not met yet to the loader's
        ``prefetch``, if it has one, so that their warm-ups cost one round trip in all."""
        prefetch = getattr(self._loader, "prefetch", None)
        firsts: dict[str, datetime] = {}
        for r in readings:
            pid = r.patient_id
            if pid is not None and pid not in self._patients:
                firsts[pid] = min(firsts.get(pid, r.measured_at), r.measured_at)
        if prefetch is None or not firsts:
            return
        try:
            prefetch(firsts)
        except Exception as exc:  # the loader is the cloud's adapter: any failure = retry
            raise WarmUpError(f"history prefetch failed: {exc}") from exc

    def evaluate(self, reading: Reading) -> list[AlertSignal]:
        """Update the patient's state with a stored reading; return the signals it causes."""
        pid = reading.patient_id
        if pid is None:
            return []
        measured, received = ts(reading.measured_at), ts(reading.received_at)
        if measured > received + _FUTURE_S:
            # Ingest refuses these (vigie.contract.time_problem); here too, one such point
            # would become the patient's latest and prune every real reading before it.
            log.warning("reading %s measured after its receipt: not evaluated", reading.id)
            return []
        state = self._state(pid, reading)
        if reading.id in state.unevaluated:
            # Met in the warm-up's history before its own delivery: its rules may never have
            # run. Its history copy goes, and it is evaluated as a late reading would be.
            state.unevaluated.discard(reading.id)
            state.seen.discard(reading.id)
            state.get(reading.kind).remove(measured, reading.id)
        self._prune(state, reading.kind)
        if reading.id in state.seen or measured < state.horizon.get(reading.kind, -math.inf):
            return []
        series = state.series.get(reading.kind)
        if (series is not None and measured < series.archived_before
                and reading.value is not None and series.in_archive(measured, reading.value)):
            return []  # a redelivery of an archived value (archived values keep no id)
        state.seen.add(reading.id)
        device = state.devices.get(reading.device_id)
        cadence = None if device is None else device.cadence
        if self._moves_silence_earlier(state, reading, measured):
            self._touched.add(pid)
        state.since = min(state.since, measured)
        state.note_device(reading.device_id, reading.gateway_id, measured, received)
        if state.devices[reading.device_id].cadence != cadence:
            self._touched.add(pid)  # a device may have become a CGM stream: shorter limit
        self._gateway_patients.setdefault(reading.gateway_id, set()).add(pid)
        self._heard(reading.gateway_id, received)
        signals = []
        value = self._usable_value(reading)
        if value is not None and reading.kind in self._point_rules:
            sample = Sample(measured, value, reading.id, received, reading.device_id)
            signals += self._untrusted_cap(reading, self._on_sample(state, reading.kind, sample))
        if self._clock is not None and any(r.id in state.raised for r in self._silence_rules):
            signals += self._silence(state, self._clock, self._silent, clear_only=True)
        return signals

    def tick(self, now: datetime) -> list[AlertSignal]:
        """Advance the clock (never backwards) and evaluate the silence rules of the
        patients something is due for (see the module docstring)."""
        t = ts(now) if self._clock is None else max(self._clock, ts(now))
        self._clock = t
        self._gateways_turned_silent(t)
        due = self._touched
        self._touched = set()
        while self._due and self._due[0][0] <= t:
            at, pid = heapq.heappop(self._due)
            if self._due_at.get(pid) == at:
                del self._due_at[pid]
                due.add(pid)
        signals: list[AlertSignal] = []
        for pid in sorted(due):
            state = self._patients.get(pid)
            if state is None:
                continue
            signals += self._silence(state, t, self._silent, clear_only=False)
            self._schedule(state, t)
        return signals

    def due_count(self) -> int:
        """Patients the next tick will visit at the earliest (touched or scheduled)."""
        return len(self._touched) + len(self._due_at)

    def forget(self, patient_ids: Iterable[str]) -> None:
        """Drop what the engine holds for these patients: after a failed transaction their
        state may count readings whose alerts were never committed. The next reading warms
        them up again from storage, where those readings are found unevaluated."""
        for pid in patient_ids:
            self._patients.pop(pid, None)
            self._due_at.pop(pid, None)
            self._touched.discard(pid)

    def heartbeat(self, gateway_id: str, at: datetime) -> None:
        """A gateway status message: it is alive, and from now on watched for silence."""
        if gateway_id not in self._heartbeat_gateways:
            self._heartbeat_gateways.add(gateway_id)
            self._gateway_seen.setdefault(gateway_id, ts(at))
            self._watch(gateway_id)
        self._heard(gateway_id, ts(at))

    def set_patient_settings(self, patient_id: str, settings: Mapping[str, Any] | None
                             ) -> None:
        """Replace one patient's settings while running (the care team edited them).

        Validated against the catalogue like a rules file; the patient's cached plans and
        parameters are dropped so the next reading uses the new ones. Raises SettingsError.
        """
        if settings is None:
            if patient_id not in self._own:
                return
            self._release(self._own.pop(patient_id))
        else:
            try:
                parsed = PatientSettings.model_validate(dict(settings))
            except ValidationError as exc:
                raise SettingsError(f"patient {patient_id}: {exc}") from exc
            if self._own.get(patient_id) == parsed.model_dump_json():
                return
            self._adopt(patient_id, parsed)
        self._touched.add(patient_id)

    def _adopt(self, patient_id: str, settings: PatientSettings) -> None:
        """Give the patient these settings, checked against the catalogue unless an equal
        set already was."""
        key = settings.model_dump_json()
        if key not in self._shared:
            check_patient(self._config, patient_id, settings, self._by_id)
            self._shared[key] = settings
        old = self._own.get(patient_id)
        self._own[patient_id] = key
        self._users[key] = self._users.get(key, 0) + 1
        if old is not None:
            self._release(old)

    def _release(self, key: str) -> None:
        """One patient less uses these settings; the last one takes their caches along."""
        self._users[key] -= 1
        if self._users[key]:
            return
        del self._users[key], self._shared[key]
        for rule in self._rules:
            self._params.pop((key, rule.id), None)
        for kind in self._point_rules:
            self._plans.pop((key, kind), None)
            self._lookbacks.pop((key, kind), None)

    def findings(self, patient_id: str) -> dict[tuple[str, datetime, str], Finding]:
        """The current window results of a patient: (rule, evaluation time, sample id) ->
        finding. Independent of arrival order."""
        state = self._patients.get(patient_id)
        if state is None:
            return {}
        return {(rule, dt(at), sid): f for (rule, at, sid), f in sorted(state.ledger.items())}

    def held(self, patient_id: str) -> dict[Kind, tuple[int, int]]:
        """What the engine holds for a patient, per kind: (samples, archived values)."""
        state = self._patients.get(patient_id)
        if state is None:
            return {}
        return {kind: (len(series), series.archived) for kind, series in state.series.items()}

    # -- patients, settings, warm-up ---------------------------------------------------

    def _settings(self, pid: str) -> PatientSettings:
        return self._shared[self._own.get(pid, "")]

    def _params_for(self, rule: BaseRule[Any], pid: str) -> Any:
        key = (self._own.get(pid, ""), rule.id)
        params = self._params.get(key)
        if params is None:
            settings = self._settings(pid)
            params = rule.make_params(merged_overrides(self._config, settings, rule.id))
            self._params[key] = params
        return params

    def _active(self, rule: BaseRule[Any], pid: str, settings: PatientSettings) -> bool:
        if rule.can_disable and is_disabled(self._config, settings, rule.id):
            return False
        return rule.applies(settings)

    def _plan(self, pid: str, kind: Kind) -> list[tuple[Rule[Any], Any]]:
        """The active rules of a kind for a patient, with their parameters (cached)."""
        key = (self._own.get(pid, ""), kind)
        plan = self._plans.get(key)
        if plan is None:
            settings = self._settings(pid)
            plan = [(rule, self._params_for(rule, pid))
                    for rule in self._point_rules.get(kind, [])
                    if self._active(rule, pid, settings)]
            self._plans[key] = plan
        return plan

    def _lookback(self, kind: Kind, pid: str) -> float:
        """The longest look-back of the kind's rules for this patient (cached)."""
        key = (self._own.get(pid, ""), kind)
        found = self._lookbacks.get(key)
        if found is None:
            rules = self._point_rules.get(kind, [])
            found = max((r.lookback(self._params_for(r, pid)) for r in rules), default=0.0)
            self._lookbacks[key] = found
        return found

    def _state(self, pid: str, reading: Reading) -> PatientState:
        state = self._patients.get(pid)
        if state is None:
            state = PatientState(pid)
            if self._loader is not None:
                self._warm_up(state, self._loader, reading.measured_at)
            self._patients[pid] = state
        return state

    def _warm_up(self, state: PatientState, loader: HistoryLoader, until: datetime) -> None:
        for kind in self._point_rules:
            start = dt(ts(until) - self._lookback(kind, state.patient_id) - DAY)
            try:
                items = list(loader(state.patient_id, kind, start, until))
            except Exception as exc:  # the loader is the cloud's adapter: any failure = retry
                raise WarmUpError(f"history loader failed for {kind}: {exc}") from exc
            for item in items:
                if item.value is not None and item.id not in state.seen:
                    t = ts(item.measured_at)
                    state.get(kind).insert(Sample(t, float(item.value), item.id, t))
                    state.seen.add(item.id)
                    state.unevaluated.add(item.id)
                    state.since = min(state.since, t)
        log.debug("warmed up a patient with %d samples", len(state.seen))

    @staticmethod
    def _untrusted_cap(reading: Reading, signals: list[AlertSignal]) -> list[AlertSignal]:
        """A value whose device clock could not be trusted may be old (a stored record of a
        meter whose clock was never set): it raises at most a warning, never an urgent page."""
        if reading.time_trusted:
            return signals
        return [replace(s, severity=Severity.WARNING)
                if s.reading_id == reading.id and s.severity is Severity.URGENT else s
                for s in signals]

    @staticmethod
    def _usable_value(reading: Reading) -> float | None:
        """The value, when rules may use it: a finite number in the canonical unit (ingest
        quarantines the rest; a device's special value carries no number), measured on the
        patient (control solution, demonstration mode and cuff inflation are flagged
        ``non_patient_data`` by the codecs)."""
        value = reading.value
        if value is None or not math.isfinite(value) or "non_patient_data" in reading.flags:
            return None
        return value if reading.unit == CANONICAL_UNIT.get(reading.kind) else None

    # -- point rules -------------------------------------------------------------------

    def _on_sample(self, state: PatientState, kind: Kind, sample: Sample) -> list[AlertSignal]:
        series = state.get(kind)
        prev_last = series.last_time
        archived = sample.t < series.archived_before
        if archived:
            # older than every level rule's windows and staleness: only the daily summaries
            # reading the archive can change (``_prune`` sets the boundary)
            series.archive(sample.t, sample.value)
            state.seen.discard(sample.id)  # archived values are recognised by time and value
            newest = False
        else:
            series.insert(sample)
            newest = series.latest is sample
        now = sample.received if self._clock is None else max(sample.received, self._clock)
        settings = self._settings(state.patient_id)
        signals: list[AlertSignal] = []
        for rule, params in self._plan(state.patient_id, kind):
            if archived and not rule.daily:
                continue
            for at, point in self._points(rule, params, series, sample, prev_last, newest):
                ctx = RuleContext(state, settings, params, at, point)
                signals += self._evaluate_point(rule, ctx, now, own=point is sample or newest)
        return signals

    def _points(self, rule: Rule[Any], params: Any, series: Series, sample: Sample,
                prev_last: float | None, newest: bool) -> list[Point]:
        """Where a new sample can change a result: its own point and, when it landed in the
        past, every later point within the rule's look-back."""
        horizon = sample.t + rule.lookback(params)
        last = series.last_time
        assert last is not None
        if rule.daily:
            if newest:
                start = prev_last if prev_last is not None else sample.t
                return [(m, None) for m in midnights(start, sample.t, self._zone)]
            return [(m, None) for m in midnights(sample.t, min(horizon, last), self._zone)]
        if newest:
            return [(sample.t, sample)]
        return [(s.t, s) for s in series.between(sample.t, horizon)]

    def _evaluate_point(self, rule: Rule[Any], ctx: RuleContext[Any], now: float,
                        own: bool) -> list[AlertSignal]:
        state = ctx.state
        found = rule.evaluate(ctx)
        key = (rule.id, ctx.at, ctx.sample.id if ctx.sample else "")
        before = state.ledger.pop(key, None)
        if found is not None:
            state.ledger[key] = found
        stale = rule.stale_after is not None and now - ctx.at > rule.stale_after
        if found is not None:
            if stale or (found == before and not own):
                return []
            return [self._raise(rule, ctx, found, late=now - ctx.at > rule.late_after)]
        if (rule.id in state.raised and not stale and self._is_latest(rule, ctx)
                and rule.cleared(ctx)):
            del state.raised[rule.id]
            return [self._signal(rule, state.patient_id, ctx.at, ctx.sample, None, clear=True)]
        return []

    @staticmethod
    def _is_latest(rule: Rule[Any], ctx: RuleContext[Any]) -> bool:
        series = ctx.state.get(rule.kind)
        if rule.daily:
            last = series.last_time
            return last is not None and ctx.at == math.floor(last / DAY) * DAY
        return series.latest is not None and ctx.sample is series.latest

    def _raise(self, rule: BaseRule[Any], ctx: RuleContext[Any], found: Finding,
               late: bool) -> AlertSignal:
        if late and RANK[found.severity] > RANK[Severity.WARNING]:
            found = Finding(Severity.WARNING, found.value, found.message, found.text)
        ctx.state.raised[rule.id] = found.severity
        return self._signal(rule, ctx.state.patient_id, ctx.at, ctx.sample, found, late=late)

    @staticmethod
    def _signal(rule: BaseRule[Any], pid: str, at: float, sample: Sample | None,
                found: Finding | None, *, late: bool = False,
                clear: bool = False) -> AlertSignal:
        severity = found.severity if found is not None else Severity.INFO
        message = found.message if found is not None else f"{rule.id}: condition cleared"
        value = found.value if found is not None else (sample.value if sample else None)
        return AlertSignal(patient_id=pid, rule=rule.id, severity=severity,
                           category=rule.category, time=dt(at), value=value, message=message,
                           reading_id=sample.id if sample else None, late=late, clear=clear,
                           text=found.text if found is not None else None)

    # -- silence -----------------------------------------------------------------------

    def _gateway_silence_limit(self) -> float:
        """Seconds without news after which a watched gateway is silent (``silence.gateway``
        with the global overrides; infinite when the rule is not in the catalogue)."""
        rule = self._by_id.get("silence.gateway")
        if rule is None:
            return math.inf
        params = rule.make_params(self._config.thresholds.get(rule.id, {}))
        return float(params.model_dump()["hours"]) * 3600.0

    def _heard(self, gateway_id: str, at: float) -> None:
        """News from a gateway (a reading or a heartbeat) received at ``at``."""
        before = self._gateway_seen.get(gateway_id)
        if before is not None and at <= before:
            return
        self._gateway_seen[gateway_id] = at
        if gateway_id not in self._heartbeat_gateways:
            return
        if gateway_id in self._silent and (
                self._clock is None or self._clock - at < self._gateway_limit):
            self._silent = self._silent - {gateway_id}
            self._touched |= self._gateway_patients.get(gateway_id, set())
        self._watch(gateway_id)

    def _watch(self, gateway_id: str) -> None:
        """One heap entry per watched gateway that is not silent, at the time it would turn
        silent when it was last put there; news since only moves that time later, so the
        entry is checked and put back when it comes due (one entry per gateway, not one per
        reading)."""
        if gateway_id in self._gateway_pending or gateway_id in self._silent:
            return
        self._gateway_pending.add(gateway_id)
        heapq.heappush(self._gateway_due,
                       (self._gateway_seen[gateway_id] + self._gateway_limit, gateway_id))

    def _gateways_turned_silent(self, now: float) -> None:
        heap = self._gateway_due
        while heap and heap[0][0] <= now:
            _, gateway_id = heapq.heappop(heap)
            self._gateway_pending.discard(gateway_id)
            if now - self._gateway_seen[gateway_id] >= self._gateway_limit:
                self._silent = self._silent | {gateway_id}
                self._touched |= self._gateway_patients.get(gateway_id, set())
            else:
                self._watch(gateway_id)  # heard from since: back at its new time

    def _moves_silence_earlier(self, state: PatientState, reading: Reading,
                               measured: float) -> bool:
        """Whether the next tick must look at this patient's silence rules again. A reading
        usually only pushes their next change later (fresher data), and the time already in
        the heap then costs one visit that finds nothing and reschedules; so the patient is
        visited only when something may have become due sooner: a silence alert is raised
        (the reading may clear or lower it), the device or patient is new or the device
        changed gateway, or the reading is older than everything seen. (A change of a
        device's cadence is checked by the caller.)"""
        if state.patient_id not in self._due_at:
            return True
        if any(rule.id in state.raised for rule in self._silence_rules):
            return True
        device = state.devices.get(reading.device_id)
        if device is None or device.gateway_id != reading.gateway_id:
            return True
        return measured < state.since

    def _schedule(self, state: PatientState, now: float) -> None:
        """Put the patient back in the heap at the earliest time after ``now`` at which one
        of its silence rules may change its result."""
        pid = state.patient_id
        settings = self._settings(pid)
        nxt = math.inf
        for rule in self._silence_rules:
            if rule.applies(settings):
                at = rule.due(state, settings, self._params_for(rule, pid), now, self._silent)
                if at is not None:
                    nxt = min(nxt, at)
        if nxt == math.inf:
            self._due_at.pop(pid, None)
        elif self._due_at.get(pid) != nxt:
            self._due_at[pid] = nxt
            heapq.heappush(self._due, (nxt, pid))

    def _silence(self, state: PatientState, now: float, silent: frozenset[str],
                 clear_only: bool) -> list[AlertSignal]:
        settings = self._settings(state.patient_id)
        signals: list[AlertSignal] = []
        for rule in self._silence_rules:
            if not rule.applies(settings):
                continue
            found = rule.check(state, settings, self._params_for(rule, state.patient_id),
                               now, silent)
            prev = state.raised.get(rule.id)
            if found is not None and not clear_only and prev != found.severity:
                state.raised[rule.id] = found.severity
                signals.append(self._signal(rule, state.patient_id, now, None, found))
            elif found is None and prev is not None:
                del state.raised[rule.id]
                signals.append(self._signal(rule, state.patient_id, now, None, None,
                                            clear=True))
        return signals

    def _prune(self, state: PatientState, kind: Kind) -> None:
        """Forget the samples of a kind measured before the engine clock minus the kind's
        longest look-back and a day: readings that old are ignored when they come (too
        late to change a window a clinician would still act on). The limit moves by whole
        hours, so a series is pruned at most once an hour, and the limit is a function of
        the clock alone: the same whatever order the readings came in."""
        if self._clock is None:
            return
        clock = math.floor(self._clock / HOUR) * HOUR
        limit = clock - self._lookback(kind, state.patient_id) - DAY
        if limit > state.horizon.get(kind, -math.inf):
            # a level rule's findings older than its stale_after can never signal again
            # (``_evaluate_point``): they go with the hour, the others with the samples
            rules = self._point_rules.get(kind, [])
            forget = {rule.id: limit if rule.stale_after is None
                      else max(limit, clock - rule.stale_after - HOUR) for rule in rules}
            state.prune(kind, limit, forget, clock - self._samples_kept(kind, state.patient_id))

    def _samples_kept(self, kind: Kind, pid: str) -> float:
        """How far back a kind's values must stay samples: as far as the windows of points
        its level rules can still signal on reach (look-back plus stale_after, plus an
        hour); infinite when a rule other than a daily summary has no stale_after. Older
        values go to the series' archive, which only daily summaries read."""
        kept = HOUR
        for rule in self._point_rules.get(kind, []):
            if rule.daily:
                continue
            if rule.stale_after is None:
                return math.inf
            kept = max(kept, rule.lookback(self._params_for(rule, pid)) + rule.stale_after
                       + HOUR)
        return kept
