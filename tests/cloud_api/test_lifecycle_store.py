"""The persisted alert lifecycle (cloud_api.alerts): escalation, snooze and its expiry, lows
that override a snooze, resolution by hand, notifications in the alert's own transaction,
edge alarms that already paged the site. Every clock is injected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.seam import AlertSignal, Category, Severity
from cloud_api import alerts, notifications
from cloud_api.db import Alert, AlertEvent, AlertTimer, NotifyEvent, make_engine, make_sessions
from cloud_api.tenancy import register_patient
from tests.dbkit import database_url
from vigie.contract import EdgeAlarm

T0 = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
LOW = "dm.hypoglycaemia"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def signal(rule: str = LOW, severity: Severity = Severity.URGENT, at: datetime = T0,
           reading: str = "r-1", pid: str = "p-1", clear: bool = False) -> AlertSignal:
    return AlertSignal(patient_id=pid, rule=rule, severity=severity, category=Category.CLINICAL,
                       time=at, value=45.0, message=f"{rule} {severity}", reading_id=reading,
                       clear=clear)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url(tmp_path))
    yield make_sessions(engine)
    engine.dispose()


class Store:
    """Ingest's side of the store, with an injected clock and the notification hook."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions() as session:
            self.live = alerts.LiveIndex(session)
        with sessions.begin() as session:
            register_patient(session, "p-1", "ehpad-1")

    def apply(self, *signals: AlertSignal, now: datetime = T0) -> list[int]:
        with self.sessions.begin() as session:
            opened = alerts.apply_signals(session, signals, self.live, now,
                                          notifications.enqueue)
            return [a.id for a in opened]

    def tick(self, now: datetime) -> list[tuple[int, str]]:
        with self.sessions.begin() as session:
            changes = alerts.tick_lifecycle(session, now, on_change=notifications.enqueue)
            return [(a.id, change) for a, change in changes]

    def alert(self, alert_id: int) -> tuple[str, int, datetime | None]:
        with self.sessions() as session:
            alert = session.get(Alert, alert_id)
            row = session.get(AlertTimer, alert_id)
            assert alert is not None and row is not None
            return alert.state, row.escalation_level, row.snoozed_until

    def history(self, alert_id: int) -> list[tuple[str, str, datetime, str | None]]:
        return [(e.who, e.to_state, e.at, e.comment) for e in alerts.history(self.sessions,
                                                                              alert_id)]

    def notified(self) -> list[tuple[int, str]]:
        with self.sessions() as session:
            return [(e.alert_id, e.change) for e in
                    session.scalars(select(NotifyEvent).order_by(NotifyEvent.id))]


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> Store:
    return Store(sessions)


def test_unacknowledged_urgent_escalates_every_15_minutes_until_acknowledged(store: Store
                                                                              ) -> None:
    [aid] = store.apply(signal())
    assert store.tick(T0 + minutes(14.9)) == []
    assert store.tick(T0 + minutes(15)) == [(aid, "escalated")]
    assert store.alert(aid)[:2] == ("escalated", 1)
    assert store.tick(T0 + minutes(29)) == [], "the next level counts from the escalation"
    assert store.tick(T0 + minutes(30)) == [(aid, "escalated")]
    alerts.acknowledge(store.sessions, aid, "nurse-1", "seen")
    assert store.tick(T0 + minutes(120)) == []
    assert [(who, to) for who, to, _, _ in store.history(aid)] == [
        ("system", "open"), ("system", "escalated"), ("system", "escalated"),
        ("nurse-1", "acknowledged")]
    assert store.history(aid)[1][2] == T0 + minutes(15)
    assert store.notified() == [(aid, "opened"), (aid, "escalated"), (aid, "escalated")]


def test_warning_waits_four_hours_and_info_never_escalates(store: Store) -> None:
    [warn] = store.apply(signal("hf.bp_systolic", Severity.WARNING))
    [info] = store.apply(signal("hf.weight_gain_1d", Severity.INFO))
    assert store.tick(T0 + minutes(239)) == []
    assert store.tick(T0 + minutes(240)) == [(warn, "escalated")]
    assert store.tick(T0 + timedelta(days=30)) == [(warn, "escalated")]
    assert store.alert(info)[:2] == ("open", 0)


def test_escalation_stops_at_the_policy_maximum(sessions: sessionmaker[Session]) -> None:
    store = Store(sessions)
    [aid] = store.apply(signal())
    policy = alerts.LifecyclePolicy(max_escalation=2)
    for n in range(1, 6):
        with sessions.begin() as session:
            alerts.tick_lifecycle(session, T0 + minutes(15 * n), policy)
    assert store.alert(aid)[:2] == ("escalated", 2)


def test_snooze_holds_escalation_then_expires_back_to_open(store: Store) -> None:
    [aid] = store.apply(signal("hf.bp_systolic", Severity.URGENT))
    with store.sessions.begin() as session:
        alert = session.get(Alert, aid)
        assert alert is not None
        alerts.snooze_in(session, alert, "nurse-1", T0 + minutes(45), "will call back",
                         now=T0 + minutes(5))
    assert store.alert(aid) == ("snoozed", 0, T0 + minutes(45))
    assert store.tick(T0 + minutes(44)) == [], "a snoozed alert does not escalate"
    assert store.tick(T0 + minutes(45)) == [(aid, "snooze_expired")]
    assert store.alert(aid) == ("open", 0, None)
    assert store.tick(T0 + minutes(59)) == [], "escalation counts from the expiry"
    assert store.tick(T0 + minutes(60)) == [(aid, "escalated")]
    hist = store.history(aid)
    assert [(who, to) for who, to, _, _ in hist] == [
        ("system", "open"), ("nurse-1", "snoozed"), ("system", "open"),
        ("system", "escalated")]
    assert hist[1][3] == f"until {T0 + minutes(45):%Y-%m-%dT%H:%M:%S}.000000Z: will call back"
    assert hist[2][2:] == (T0 + minutes(45), "snooze expired")
    assert store.notified() == [(aid, "opened"), (aid, "snooze_expired"), (aid, "escalated")]


def test_a_new_low_overrides_any_snooze(store: Store) -> None:
    [low] = store.apply(signal(LOW, Severity.WARNING, reading="r-1"))
    [bp] = store.apply(signal("hf.bp_systolic", Severity.WARNING, reading="r-2"))
    until = T0 + minutes(30)
    for aid in (low, bp):
        alerts.snooze(store.sessions, aid, "nurse-1", until, now=T0)
    # same severity, new readings: the low reopens, the blood pressure stays snoozed
    store.apply(signal(LOW, Severity.WARNING, T0 + minutes(5), reading="r-3"),
                signal("hf.bp_systolic", Severity.WARNING, T0 + minutes(5), reading="r-4"),
                now=T0 + minutes(5))
    assert store.alert(low) == ("open", 0, None)
    assert store.alert(bp)[0] == "snoozed"
    assert str(store.history(low)[-1][3]).startswith("snooze overridden")
    # worse news reopens any snoozed alert
    store.apply(signal("hf.bp_systolic", Severity.URGENT, T0 + minutes(6), reading="r-5"),
                now=T0 + minutes(6))
    assert store.alert(bp)[0] == "open"
    assert store.notified()[2:] == [(low, "reopened"), (bp, "reopened")]


def test_a_redelivered_low_does_not_reopen(store: Store) -> None:
    [low] = store.apply(signal(LOW, Severity.WARNING, reading="r-1"))
    alerts.snooze(store.sessions, low, "nurse-1", T0 + minutes(30), now=T0)
    store.apply(signal(LOW, Severity.WARNING, reading="r-1"), now=T0 + minutes(1))
    assert store.alert(low)[0] == "snoozed"


def test_snooze_limits(store: Store) -> None:
    [low] = store.apply(signal(LOW))
    [bp] = store.apply(signal("hf.bp_systolic", Severity.WARNING, reading="r-2"))
    with store.sessions.begin() as session:
        low_alert, bp_alert = session.get(Alert, low), session.get(Alert, bp)
        assert low_alert is not None and bp_alert is not None
        with pytest.raises(alerts.AlertStateError, match="outside"):
            alerts.snooze_in(session, low_alert, "n", T0 + minutes(61), now=T0)
        with pytest.raises(alerts.AlertStateError, match="outside"):
            alerts.snooze_in(session, bp_alert, "n", T0 - minutes(1), now=T0)
        with pytest.raises(alerts.AlertStateError, match="time zone"):
            alerts.snooze_in(session, bp_alert, "n", datetime(2026, 3, 1, 8), now=T0)
        alerts.snooze_in(session, bp_alert, "n", T0 + timedelta(days=7), now=T0)
    with pytest.raises(alerts.AlertNotFound):
        alerts.snooze(store.sessions, 999, "n", T0 + minutes(5), now=T0)


def test_acknowledged_alert_reopens_only_on_worse_news(store: Store) -> None:
    [aid] = store.apply(signal(LOW, Severity.WARNING))
    alerts.acknowledge(store.sessions, aid, "nurse-1", None)
    store.apply(signal(LOW, Severity.WARNING, T0 + minutes(5), reading="r-2"))
    assert store.alert(aid)[0] == "acknowledged", "no re-raise after acknowledgement"
    store.apply(signal(LOW, Severity.URGENT, T0 + minutes(6), reading="r-3"))
    assert store.alert(aid)[0] == "open"


def test_resolve_by_hand_then_a_new_raise_opens_a_new_alert(store: Store) -> None:
    [aid] = store.apply(signal())
    resolved = alerts.resolve(store.sessions, aid, "dr-house", "treated")
    assert resolved.state == "resolved"
    with pytest.raises(alerts.AlertStateError):
        alerts.resolve(store.sessions, aid, "dr-house")
    with pytest.raises(alerts.AlertStateError):
        alerts.snooze(store.sessions, aid, "dr-house", T0 + minutes(5), now=T0)
    assert store.history(aid)[-1][:2] == ("dr-house", "resolved")
    [again] = store.apply(signal(reading="r-2", at=T0 + minutes(3)), now=T0 + minutes(3))
    assert again != aid
    assert store.tick(T0 + minutes(60)) == [(again, "escalated")]


def test_clear_signal_resolves_with_hysteresis_from_the_engine(store: Store) -> None:
    [aid] = store.apply(signal())
    store.apply(signal(clear=True, at=T0 + minutes(10), reading="r-9"), now=T0 + minutes(10))
    assert store.alert(aid)[0] == "resolved"
    assert store.history(aid)[-1][:3] == ("system", "resolved", T0 + minutes(10))
    assert store.tick(T0 + minutes(60)) == []


def test_notification_is_written_in_the_alert_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.sessions.begin() as session:
        alerts.apply_signals(session, [signal()], store.live, T0, notifications.enqueue)
        assert len(session.scalars(select(NotifyEvent)).all()) == 1
        raise RuntimeError("crash before commit")
    with store.sessions() as session:
        assert session.scalars(select(Alert)).all() == []
        assert session.scalars(select(NotifyEvent)).all() == []
    with store.sessions() as session:  # ingest rebuilds its cache on failure
        store.live = alerts.LiveIndex(session)
    [aid] = store.apply(signal())
    with store.sessions() as session:
        [event] = session.scalars(select(NotifyEvent)).all()
        assert (event.alert_id, event.site_id, event.change) == (aid, "ehpad-1", "opened")
        assert event.body["rule"] == LOW and event.body["reading"] == "r-1"


def _edge(reading: str = "r-1") -> EdgeAlarm:
    return EdgeAlarm("p-1", LOW, reading, "urgent", "level 2", 45.0, T0, T0 + minutes(1))


def test_alert_paged_on_site_by_the_gateway_is_not_paged_again(store: Store) -> None:
    with store.sessions.begin() as session:
        assert alerts.record_edge_alarms(session, "gw-1", [_edge()], store.live, T0) == 1
        assert alerts.record_edge_alarms(session, "gw-1", [_edge()], store.live, T0) == 0
    [aid] = store.apply(signal(reading="r-1"))
    with store.sessions() as session:
        row = session.get(AlertTimer, aid)
        assert row is not None and row.on_site_alarm == _edge().id
    assert store.notified() == []
    assert store.tick(T0 + minutes(15)) == [(aid, "escalated")], "still escalates unanswered"
    assert store.notified() == [(aid, "escalated")]


def test_edge_alarm_arriving_after_the_alert_cancels_its_first_page(store: Store) -> None:
    [aid] = store.apply(signal(reading="r-1"))
    [other] = store.apply(signal("hf.heart_rate", reading="r-2"))
    with store.sessions.begin() as session:
        alerts.record_edge_alarms(session, "gw-1", [_edge("r-1")], store.live, T0)
    assert store.notified() == [(other, "opened")]
    with store.sessions() as session:
        row = session.get(AlertTimer, aid)
        assert row is not None and row.on_site_alarm == _edge().id
        events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == aid)).all()
        assert [e.to_state for e in events] == ["open"]


def _counting_selects(sessions: sessionmaker[Session]) -> list[str]:
    """SELECT statements the engine behind ``sessions`` runs from now on."""
    seen: list[str] = []
    engine = sessions.kw["bind"]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    return seen


def test_a_batch_of_signals_is_recorded_in_a_few_queries(store: Store) -> None:
    """A batch's signals over 300 live alerts (a raise each, worse news for a third, a clear
    for another third) read the rows they touch in a few queries, not one or more per
    signal (a profile once put 45% of ingest here), and each history gets its lines in
    order."""
    patients = [f"p-{i}" for i in range(300)]
    with store.sessions.begin() as session:
        for pid in patients:
            register_patient(session, pid, "ehpad-1")
    opened = store.apply(*(signal(pid=p, severity=Severity.WARNING, reading=f"a-{p}")
                           for p in patients))
    assert len(opened) == 300
    selects = _counting_selects(store.sessions)
    later = T0 + minutes(5)
    batch = [signal(pid=p, at=later, reading=f"b-{p}",
                    severity=Severity.URGENT if i % 3 == 0 else Severity.WARNING,
                    clear=i % 3 == 1) for i, p in enumerate(patients)]
    assert store.apply(*batch, now=later) == []
    assert len(selects) <= 6, selects  # alerts, timers, line counts, on-site alarms
    states = {}
    for aid in opened:
        state, _, _ = store.alert(aid)
        states[aid] = (state, [e.to_state for e in alerts.history(store.sessions, aid)],
                       [e.seq for e in alerts.history(store.sessions, aid)])
    assert states[opened[0]] == ("open", ["open", "open"], [1, 2])  # upgraded: a line
    assert states[opened[1]] == ("resolved", ["open", "resolved"], [1, 2])
    assert states[opened[2]] == ("open", ["open"], [1])  # same severity, counted only


def test_a_tick_loads_only_the_alerts_due_to_escalate(store: Store) -> None:
    """200 unacknowledged warnings (4 hours) and one urgent (15 minutes): the tick at 20
    minutes escalates the urgent one having loaded it alone, not every open alert."""
    patients = [f"p-{i}" for i in range(200)]
    with store.sessions.begin() as session:
        for pid in patients:
            register_patient(session, pid, "ehpad-1")
    store.apply(*(signal(pid=p, severity=Severity.WARNING, reading=f"w-{p}") for p in patients))
    [urgent] = store.apply(signal("hf.heart_rate", reading="r-u"))
    loaded: list[int] = []

    def _loaded(target: Alert, context: object) -> None:
        loaded.append(target.id)

    event.listen(Alert, "load", _loaded)
    try:
        assert store.tick(T0 + minutes(20)) == [(urgent, "escalated")]
    finally:
        event.remove(Alert, "load", _loaded)
    assert loaded == [urgent]
