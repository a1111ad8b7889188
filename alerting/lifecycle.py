"""Alert lifecycle: signals in, alerts with a state machine out. Pure, in memory, with an
event log (persistence is the cloud's job).

States and transitions (who and when recorded for each)::

    (none) --raise--> OPEN --ack--> ACKNOWLEDGED
    OPEN/ESCALATED --not acknowledged within escalate_after[severity]--> ESCALATED (level+1)
    OPEN/ESCALATED/ACKNOWLEDGED --snooze(until)--> SNOOZED --until passed--> OPEN
    SNOOZED --raise of a low-glucose rule--> OPEN      (lows override any snooze)
    ACKNOWLEDGED/SNOOZED --raise with a higher severity--> OPEN  (worse news re-notifies)
    any active --clear signal (rule hysteresis) or resolve()--> RESOLVED (terminal)

One active (not resolved) alert per (patient, rule): further raises update it (deduplication,
PagerDuty's dedup key); a raise after resolution opens a new alert. Acknowledged alerts are
not re-raised by the same condition (patients' and carers' request, alert-rules.md).
Snooze lengths follow Nightscout: lows 15-60 minutes, others up to 7 days.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from alerting.rules import RANK, low_glucose_rules
from alerting.seam import AlertSignal, Category, Severity
from alerting.settings import TransitionError

__all__ = ["ACTIVE", "SYSTEM", "Alert", "AlertBook", "Change", "State", "Transition"]

SYSTEM = "system"


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


ACTIVE = frozenset({State.OPEN, State.ACKNOWLEDGED, State.SNOOZED, State.ESCALATED})
UNACKNOWLEDGED = frozenset({State.OPEN, State.ESCALATED})

DEFAULT_ESCALATE_AFTER: Mapping[Severity, timedelta | None] = {
    Severity.URGENT: timedelta(minutes=15),
    Severity.WARNING: timedelta(hours=24),
    Severity.INFO: None,  # information never escalates
}
LOW_SNOOZE_MAX = timedelta(minutes=60)
SNOOZE_MAX = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Transition:
    """One line of the event log."""

    alert_id: int
    patient_id: str
    rule: str
    before: State | None
    after: State
    who: str
    at: datetime
    note: str = ""


@dataclass(slots=True)
class Alert:
    id: int
    patient_id: str
    rule: str
    category: Category
    severity: Severity
    state: State
    opened_at: datetime
    time: datetime  # measurement time of the reading that raised it (first raise)
    value: float | None
    message: str
    late: bool
    updated_at: datetime
    escalation_level: int = 0
    snoozed_until: datetime | None = None
    acknowledged_by: str | None = None
    history: list[Transition] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Change:
    """What a signal or a tick did to an alert (for notifiers and the replay output)."""

    kind: str  # opened, upgraded, reopened, resolved, escalated, snooze_expired
    alert: Alert


class AlertBook:
    """The alerts of all patients and their transitions."""

    def __init__(self, escalate_after: Mapping[Severity, timedelta | None] | None = None,
                 low_rules: Iterable[str] | None = None, max_escalation: int = 3) -> None:
        self._escalate_after = dict(DEFAULT_ESCALATE_AFTER if escalate_after is None
                                    else escalate_after)
        self._low_rules = frozenset(low_glucose_rules() if low_rules is None else low_rules)
        self._max_escalation = max_escalation
        self._ids = itertools.count(1)
        self._alerts: dict[int, Alert] = {}
        self._active: dict[tuple[str, str], int] = {}
        self.log: list[Transition] = []

    # -- queries -----------------------------------------------------------------------

    def get(self, alert_id: int) -> Alert:
        try:
            return self._alerts[alert_id]
        except KeyError:
            raise TransitionError(f"no alert {alert_id}") from None

    def active(self, patient_id: str | None = None) -> list[Alert]:
        return [self._alerts[i] for (pid, _), i in sorted(self._active.items())
                if patient_id is None or pid == patient_id]

    def all(self) -> list[Alert]:
        return [self._alerts[i] for i in sorted(self._alerts)]

    def active_for(self, patient_id: str, rule: str) -> Alert | None:
        alert_id = self._active.get((patient_id, rule))
        return None if alert_id is None else self._alerts[alert_id]

    # -- signals and clock -------------------------------------------------------------

    def on_signal(self, signal: AlertSignal, now: datetime) -> Change | None:
        """Apply a rule signal: open, update, reopen or resolve the patient's alert."""
        alert = self.active_for(signal.patient_id, signal.rule)
        if signal.clear:
            if alert is None:
                return None
            self._move(alert, State.RESOLVED, SYSTEM, now, "condition cleared")
            return Change("resolved", alert)
        if alert is None:
            return Change("opened", self._open(signal, now))
        return self._update(alert, signal, now)

    def tick(self, now: datetime) -> list[Change]:
        """Expire snoozes and escalate what was not acknowledged in time."""
        changes = []
        for alert in self.active():
            if alert.state is State.SNOOZED and alert.snoozed_until is not None \
                    and now >= alert.snoozed_until:
                alert.snoozed_until = None
                self._move(alert, State.OPEN, SYSTEM, now, "snooze expired")
                changes.append(Change("snooze_expired", alert))
            elif self._due(alert, now):
                alert.escalation_level += 1
                self._move(alert, State.ESCALATED, SYSTEM, now,
                           f"not acknowledged: level {alert.escalation_level}")
                changes.append(Change("escalated", alert))
        return changes

    # -- people ------------------------------------------------------------------------

    def acknowledge(self, alert_id: int, who: str, now: datetime) -> Alert:
        alert = self._active_alert(alert_id)
        if alert.state is State.ACKNOWLEDGED:
            return alert
        alert.acknowledged_by, alert.snoozed_until = who, None
        self._move(alert, State.ACKNOWLEDGED, who, now)
        return alert

    def snooze(self, alert_id: int, who: str, until: datetime, now: datetime) -> Alert:
        alert = self._active_alert(alert_id)
        longest = LOW_SNOOZE_MAX if alert.rule in self._low_rules else SNOOZE_MAX
        if not timedelta(0) < until - now <= longest:
            raise TransitionError(f"snooze of {until - now} outside (0, {longest}] for "
                                  f"{alert.rule}")
        alert.snoozed_until = until
        self._move(alert, State.SNOOZED, who, now, f"until {until.isoformat()}")
        return alert

    def resolve(self, alert_id: int, who: str, now: datetime, note: str = "") -> Alert:
        alert = self._active_alert(alert_id)
        self._move(alert, State.RESOLVED, who, now, note)
        return alert

    # -- internals ---------------------------------------------------------------------

    def _active_alert(self, alert_id: int) -> Alert:
        alert = self.get(alert_id)
        if alert.state is State.RESOLVED:
            raise TransitionError(f"alert {alert_id} is resolved")
        return alert

    def _open(self, signal: AlertSignal, now: datetime) -> Alert:
        alert = Alert(id=next(self._ids), patient_id=signal.patient_id, rule=signal.rule,
                      category=signal.category, severity=signal.severity, state=State.OPEN,
                      opened_at=now, time=signal.time, value=signal.value,
                      message=signal.message, late=signal.late, updated_at=now)
        self._alerts[alert.id] = alert
        self._active[(alert.patient_id, alert.rule)] = alert.id
        self._record(alert, None, SYSTEM, now, "raised")
        return alert

    def _update(self, alert: Alert, signal: AlertSignal, now: datetime) -> Change | None:
        worse = RANK[signal.severity] > RANK[alert.severity]
        if worse:
            alert.severity, alert.value, alert.message = (signal.severity, signal.value,
                                                          signal.message)
            alert.late = signal.late
        if alert.state is State.SNOOZED and (worse or signal.rule in self._low_rules):
            alert.snoozed_until = None
            self._move(alert, State.OPEN, SYSTEM, now, "snooze overridden")
            return Change("reopened", alert)
        if alert.state is State.ACKNOWLEDGED and worse:
            self._move(alert, State.OPEN, SYSTEM, now, f"worse: {signal.severity}")
            return Change("reopened", alert)
        return Change("upgraded", alert) if worse else None

    def _due(self, alert: Alert, now: datetime) -> bool:
        wait = self._escalate_after.get(alert.severity)
        if alert.state not in UNACKNOWLEDGED or wait is None:
            return False
        return alert.escalation_level < self._max_escalation and now - alert.updated_at >= wait

    def _move(self, alert: Alert, to: State, who: str, now: datetime, note: str = "") -> None:
        before = alert.state
        alert.state = to
        alert.updated_at = max(now, alert.updated_at)
        if to is State.RESOLVED:
            del self._active[(alert.patient_id, alert.rule)]
        self._record(alert, before, who, alert.updated_at, note)

    def _record(self, alert: Alert, before: State | None, who: str, at: datetime,
                note: str) -> None:
        event = Transition(alert.id, alert.patient_id, alert.rule, before, alert.state, who,
                           at, note)
        alert.history.append(event)
        self.log.append(event)
