"""Alert lifecycle: examples, then a hypothesis state machine checking the invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alerting.lifecycle import ACTIVE, SYSTEM, Alert, AlertBook, Change, State
from alerting.seam import AlertSignal, Category, Severity
from alerting.settings import TransitionError

T0 = datetime(2025, 3, 1, tzinfo=UTC)
RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.URGENT: 2}


def sig(rule: str = "hf.weight_gain_3d", severity: Severity = Severity.WARNING,
        patient: str = "p-1", clear: bool = False, at: datetime = T0) -> AlertSignal:
    return AlertSignal(patient, rule, severity, Category.CLINICAL, at, 1.0, "m", clear=clear)


def changed(book: AlertBook, signal: AlertSignal, now: datetime) -> Change:
    """What ``signal`` did, for a signal the test expects to change something."""
    change = book.on_signal(signal, now)
    assert change is not None
    return change


def state(alert: Alert) -> State:
    """The alert's current state, read afresh (so mypy does not keep an earlier narrowing)."""
    return alert.state


def test_dedup_one_open_alert_per_patient_and_rule() -> None:
    book = AlertBook()
    assert changed(book, sig(), T0).kind == "opened"
    assert book.on_signal(sig(), T0) is None
    assert len(book.active()) == 1
    book.on_signal(sig(patient="p-2"), T0)
    assert len(book.active()) == 2


def test_clear_resolves_and_a_new_raise_opens_a_new_alert() -> None:
    book = AlertBook()
    first = changed(book, sig(), T0).alert
    assert changed(book, sig(clear=True), T0 + timedelta(hours=1)).kind == "resolved"
    assert first.state is State.RESOLVED
    second = changed(book, sig(), T0 + timedelta(hours=2)).alert
    assert second.id != first.id


def test_acknowledged_not_reraised_but_worse_reopens() -> None:
    book = AlertBook()
    alert = changed(book, sig(rule="dm.hyperglycaemia"), T0).alert
    book.acknowledge(alert.id, "nurse-a", T0 + timedelta(minutes=1))
    assert book.on_signal(sig(rule="dm.hyperglycaemia"), T0 + timedelta(minutes=5)) is None
    assert state(alert) is State.ACKNOWLEDGED
    change = book.on_signal(sig(rule="dm.hyperglycaemia", severity=Severity.URGENT), T0)
    assert change is not None and change.kind == "reopened"
    assert state(alert) is State.OPEN and alert.severity is Severity.URGENT


def test_low_glucose_overrides_snooze() -> None:
    book = AlertBook()
    low = changed(book, sig(rule="dm.hypoglycaemia"), T0).alert
    book.snooze(low.id, "carer", T0 + timedelta(minutes=30), T0)
    assert state(low) is State.SNOOZED
    book.on_signal(sig(rule="dm.hypoglycaemia"), T0 + timedelta(minutes=5))
    assert state(low) is State.OPEN
    assert low.history[-1].note == "snooze overridden"


def test_other_snooze_holds_then_expires() -> None:
    book = AlertBook()
    alert = changed(book, sig(), T0).alert
    book.snooze(alert.id, "dr-b", T0 + timedelta(hours=2), T0)
    book.on_signal(sig(), T0 + timedelta(minutes=5))
    assert state(alert) is State.SNOOZED
    assert [c.kind for c in book.tick(T0 + timedelta(hours=2))] == ["snooze_expired"]
    assert state(alert) is State.OPEN


def test_snooze_bounds() -> None:
    book = AlertBook()
    low = changed(book, sig(rule="dm.hypoglycaemia"), T0).alert
    with pytest.raises(TransitionError):
        book.snooze(low.id, "carer", T0 + timedelta(minutes=61), T0)
    with pytest.raises(TransitionError):
        book.snooze(low.id, "carer", T0, T0)


def test_escalation_per_severity() -> None:
    book = AlertBook()
    urgent = changed(book, sig(rule="dm.hypoglycaemia", severity=Severity.URGENT), T0).alert
    warning = changed(book, sig(), T0).alert
    info = changed(book, sig(rule="hf.weight_gain_1d", severity=Severity.INFO), T0).alert
    book.tick(T0 + timedelta(minutes=14))
    assert state(urgent) is State.OPEN
    book.tick(T0 + timedelta(minutes=15))
    assert state(urgent) is State.ESCALATED and urgent.escalation_level == 1
    book.tick(T0 + timedelta(minutes=30))
    assert urgent.escalation_level == 2
    book.tick(T0 + timedelta(days=30))
    assert warning.state is State.ESCALATED and info.state is State.OPEN


def test_acknowledged_never_escalates_and_log_has_who_and_when() -> None:
    book = AlertBook()
    alert = changed(book, sig(severity=Severity.URGENT), T0).alert
    book.acknowledge(alert.id, "nurse-a", T0 + timedelta(minutes=3))
    book.tick(T0 + timedelta(hours=5))
    assert alert.state is State.ACKNOWLEDGED
    assert [(e.after, e.who) for e in alert.history] == [
        (State.OPEN, SYSTEM), (State.ACKNOWLEDGED, "nurse-a")]
    assert alert.history[1].at == T0 + timedelta(minutes=3)


def test_resolved_is_terminal() -> None:
    book = AlertBook()
    alert = changed(book, sig(), T0).alert
    book.resolve(alert.id, "dr-b", T0)
    ops: tuple[Callable[[], object], ...] = (
        lambda: book.acknowledge(alert.id, "x", T0),
        lambda: book.resolve(alert.id, "x", T0),
        lambda: book.snooze(alert.id, "x", T0 + timedelta(minutes=5), T0))
    for op in ops:
        with pytest.raises(TransitionError):
            op()


PATIENTS = ("p-1", "p-2")
RULES = ("dm.hypoglycaemia", "hf.weight_gain_3d")


class LifecycleMachine(RuleBasedStateMachine):
    """Random interleavings of signals, people and clock; invariants checked after each."""

    def __init__(self) -> None:
        super().__init__()
        self.book = AlertBook()
        self.now = T0
        self.seen_states: dict[int, list[State]] = {}

    def _advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(patient=st.sampled_from(PATIENTS), rule_id=st.sampled_from(RULES),
          severity=st.sampled_from(list(Severity)), minutes=st.integers(0, 90))
    def raise_signal(self, patient: str, rule_id: str, severity: Severity, minutes: int) -> None:
        self._advance(minutes)
        self.book.on_signal(sig(rule_id, severity, patient, at=self.now), self.now)
        alert = self.book.active_for(patient, rule_id)
        assert alert is not None
        assert RANKS[alert.severity] >= RANKS[severity]
        if rule_id == "dm.hypoglycaemia":
            assert alert.state is not State.SNOOZED  # lows override any snooze

    @rule(patient=st.sampled_from(PATIENTS), rule_id=st.sampled_from(RULES))
    def clear_signal(self, patient: str, rule_id: str) -> None:
        self.book.on_signal(sig(rule_id, patient=patient, clear=True, at=self.now), self.now)
        assert self.book.active_for(patient, rule_id) is None

    @precondition(lambda self: bool(self.book.active()))
    @rule(data=st.data(), who=st.sampled_from(["nurse-a", "dr-b"]))
    def acknowledge(self, data: st.DataObject, who: str) -> None:
        alert = data.draw(st.sampled_from(self.book.active()))
        self.book.acknowledge(alert.id, who, self.now)
        assert alert.state is State.ACKNOWLEDGED

    @precondition(lambda self: bool(self.book.active()))
    @rule(data=st.data(), minutes=st.integers(1, 60))
    def snooze(self, data: st.DataObject, minutes: int) -> None:
        alert = data.draw(st.sampled_from(self.book.active()))
        self.book.snooze(alert.id, "carer", self.now + timedelta(minutes=minutes), self.now)

    @precondition(lambda self: bool(self.book.all()))
    @rule(data=st.data())
    def resolve_any(self, data: st.DataObject) -> None:
        alert = data.draw(st.sampled_from(self.book.all()))
        if alert.state is State.RESOLVED:
            with pytest.raises(TransitionError):
                self.book.resolve(alert.id, "dr-b", self.now)
        else:
            self.book.resolve(alert.id, "dr-b", self.now)

    @rule(minutes=st.integers(0, 2000))
    def tick(self, minutes: int) -> None:
        self._advance(minutes)
        before = {a.id: (a.state, a.escalation_level) for a in self.book.all()}
        self.book.tick(self.now)
        for alert in self.book.all():
            state, level = before[alert.id]
            if state is State.ACKNOWLEDGED:
                assert alert.state is State.ACKNOWLEDGED  # acknowledged never escalates
            assert alert.escalation_level >= level

    @invariant()
    def one_active_alert_per_patient_and_rule(self) -> None:
        keys = [(a.patient_id, a.rule) for a in self.book.all() if a.state in ACTIVE]
        assert len(keys) == len(set(keys))

    @invariant()
    def every_transition_logged_with_who_and_when(self) -> None:
        for alert in self.book.all():
            assert alert.history and alert.history[0].before is None
            assert alert.history[-1].after is alert.state
            for a, b in zip(alert.history, alert.history[1:], strict=False):
                assert b.before is a.after and b.at >= a.at and b.who
        assert len(self.book.log) == sum(len(a.history) for a in self.book.all())

    @invariant()
    def resolved_is_terminal(self) -> None:
        for alert in self.book.all():
            states = [e.after for e in alert.history]
            if State.RESOLVED in states:
                assert states.index(State.RESOLVED) == len(states) - 1

    @invariant()
    def escalation_bounded(self) -> None:
        assert all(0 <= a.escalation_level <= 3 for a in self.book.all())


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=60, stateful_step_count=30,
                                         deadline=None)
