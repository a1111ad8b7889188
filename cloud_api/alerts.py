"""Alert store: signals from the rules become alerts with a recorded lifecycle.

One live alert per patient and rule (states ``open``, ``acknowledged``, ``snoozed``,
``escalated``): a new signal for the same patient and rule updates it (count, last value,
severity upwards) instead of opening another. A ``clear`` signal resolves it. Every transition
is an ``AlertEvent`` with who and when. The lifecycle is the one of ``alerting.lifecycle``,
persisted::

    (none) --raise--> open --acknowledge--> acknowledged
    open/escalated --not acknowledged within policy.escalate_after[severity]--> escalated
    open/escalated/acknowledged/snoozed --snooze(until)--> snoozed --until passed--> open
    snoozed --new low-glucose reading--> open           (a low overrides any snooze)
    acknowledged/snoozed --raise with a higher severity--> open   (worse news)
    any live --clear signal (rule hysteresis) or resolve()--> resolved

Time-driven transitions (escalation, snooze expiry) happen in ``tick_lifecycle``, which ingest
calls on its tick. They are compare-and-set updates, so two ingest workers ticking the same
database escalate an alert once. Changes worth a notification (opened, upgraded, reopened,
snooze_expired, escalated) are handed to an ``AlertHook`` inside the same transaction (the
notification outbox, ``cloud_api.notifications.enqueue``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.messages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    MessageError,
    Text,
    render_history,
    render_or,
)
from alerting.rules import low_glucose_rules
from alerting.seam import AlertSignal, Severity
from cloud_api.db import (
    Alert,
    AlertEvent,
    AlertEventText,
    AlertTimer,
    EdgeAlarm,
    NotifyEvent,
    Patient,
)
from vigie.contract import EdgeAlarm as EdgeAlarmNotice
from vigie.contract import alarm_id, iso, now_utc

LIVE_STATES = ("open", "acknowledged", "snoozed", "escalated")
UNACKNOWLEDGED = ("open", "escalated")
# (session, alert, change, now), called inside the transaction of the change
AlertHook = Callable[[Session, Alert, str, datetime], None]
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.URGENT: 2}


class AlertNotFound(LookupError):
    pass


class AlertStateError(ValueError):
    pass


def _default_escalation() -> dict[str, timedelta | None]:
    return {"urgent": timedelta(minutes=15), "warning": timedelta(hours=4), "info": None}


@dataclass(frozen=True)
class LifecyclePolicy:
    """How long an unacknowledged alert waits before escalating, per severity (None: never),
    how many escalation levels there are, and the snooze limits (Nightscout: lows get short
    snoozes)."""

    escalate_after: Mapping[str, timedelta | None] = field(default_factory=_default_escalation)
    max_escalation: int = 3
    low_rules: frozenset[str] = field(default_factory=low_glucose_rules)
    low_snooze_max: timedelta = timedelta(minutes=60)
    snooze_max: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Said:
    """A history line the system writes: a ``HISTORY`` key, the alert's text it wraps (key and
    arguments, else its English message) and the key's other arguments."""

    key: str
    text: Text | None = None
    english: str = ""
    args: tuple[tuple[str, int | float | str], ...] = ()

    def messages(self) -> dict[str, str]:
        """In every language; one that does not render falls back to the English line."""
        out: dict[str, str] = {}
        for lang in (DEFAULT_LANGUAGE, *[x for x in LANGUAGES if x != DEFAULT_LANGUAGE]):
            try:
                out[lang] = render_history(self.key, lang, self.text, self.english,
                                           **dict(self.args))
            except MessageError:
                out[lang] = out.get(DEFAULT_LANGUAGE, self.english)
        return out


def _event(session: Session, alert: Alert, who: str, to_state: str, comment: str | None = None,
           at: datetime | None = None, said: Said | None = None) -> None:
    """One history line; ``said`` (the system's words) gives its comment in English and keeps
    it in every language."""
    seqs = _event_counts(session)
    seq = seqs.get(alert.id)
    if seq is None:
        seq = session.scalar(select(func.count()).where(AlertEvent.alert_id == alert.id)) or 0
    seqs[alert.id] = seq + 1
    if said is not None:
        messages = said.messages()
        comment = messages[DEFAULT_LANGUAGE]
        session.add(AlertEventText(alert_id=alert.id, seq=seq + 1, messages=messages))
    session.add(AlertEvent(alert_id=alert.id, seq=seq + 1, at=at or now_utc(), who=who,
                           from_state=None if seq == 0 else alert.state, to_state=to_state,
                           comment=comment))


_EVENT_COUNTS = "vigie.alert_event_counts"


def _event_counts(session: Session) -> dict[int, int]:
    """History lines per alert, as this session knows them (``_event`` adds every line):
    kept in ``session.info`` so that a batch's alerts are counted in one query
    (``_prefetch``), not one per line. Forgotten with the session."""
    counts: dict[int, int] = session.info.setdefault(_EVENT_COUNTS, {})
    return counts


class LiveIndex:
    """Which (patient, rule) has a live alert, and its id: a cache of the alerts table.

    Only the ingest worker that owns a patient opens that patient's alerts, so the worker may
    keep this in memory and spare a query per signal; most signals are "still fine" clears of
    nothing. The API acknowledges, snoozes and resolves: ``get`` rereads the row, so an alert
    resolved by a clinician is seen as gone and the next raise opens a new one.
    """

    def __init__(self, session: Session) -> None:
        rows = session.execute(select(Alert.patient_id, Alert.rule, Alert.id)
                               .where(Alert.state.in_(LIVE_STATES)))
        self._ids: dict[tuple[str, str], int] = {(p, r): i for p, r, i in rows}

    def id_of(self, patient: str, rule: str) -> int | None:
        return self._ids.get((patient, rule))

    def get(self, session: Session, patient: str, rule: str) -> Alert | None:
        alert_id = self._ids.get((patient, rule))
        alert = None if alert_id is None else session.get(Alert, alert_id)
        if alert is not None and alert.state not in LIVE_STATES:
            alert = None  # resolved by a clinician through the API
        return alert

    def opened(self, alert: Alert) -> None:
        self._ids[(alert.patient_id, alert.rule)] = alert.id

    def closed(self, alert: Alert) -> None:
        self._ids.pop((alert.patient_id, alert.rule), None)


def timer(session: Session, alert: Alert) -> AlertTimer:
    """The alert's lifecycle row, made for alerts opened before it existed."""
    row = session.get(AlertTimer, alert.id)
    if row is None:
        row = AlertTimer(alert_id=alert.id, state_at=alert.raised_at, escalation_level=0)
        session.add(row)
    return row


def _move(session: Session, alert: Alert, to_state: str, who: str, now: datetime,
          comment: str | None = None, said: Said | None = None) -> None:
    _event(session, alert, who, to_state, comment, now, said)
    alert.state = to_state
    timer(session, alert).state_at = now


CHUNK = 500  # ids per IN (...) query


@dataclass
class _Prefetched:
    """What ``apply_signals`` needs of the rows its signals touch, read in a few queries:
    held here, the objects stay in the session's identity map (it holds them weakly), so
    ``session.get`` answers without a query."""

    rows: list[object] = field(default_factory=list)
    edges: dict[str, EdgeAlarm] = field(default_factory=dict)  # on-site alarms, by id


def _prefetch(session: Session, signals: list[AlertSignal], live: LiveIndex,
              patients: bool) -> _Prefetched:
    """The live alerts the signals name, their timers and history line counts, the on-site
    alarms of their readings and, with ``patients`` (for a notification hook: the
    patient's site), their patients: a query of each per ``CHUNK``, whatever the number of
    signals, instead of several per signal."""
    out = _Prefetched()
    if patients:
        who = sorted({s.patient_id for s in signals if not s.clear})
        for start in range(0, len(who), CHUNK):
            out.rows.extend(session.scalars(select(Patient).where(
                Patient.id.in_(who[start:start + CHUNK]))))
    ids = sorted({i for s in signals if (i := live.id_of(s.patient_id, s.rule)) is not None})
    counts = _event_counts(session)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        out.rows.extend(session.scalars(select(Alert).where(Alert.id.in_(chunk))))
        out.rows.extend(session.scalars(select(AlertTimer).where(AlertTimer.alert_id.in_(chunk))))
        found = {i: n for i, n in session.execute(
            select(AlertEvent.alert_id, func.count()).where(AlertEvent.alert_id.in_(chunk))
            .group_by(AlertEvent.alert_id))}
        for i in chunk:
            counts.setdefault(i, found.get(i, 0))
    edges = sorted({alarm_id(s.patient_id, s.rule, s.reading_id) for s in signals
                    if not s.clear and s.reading_id is not None})
    for start in range(0, len(edges), CHUNK):
        out.edges.update((e.id, e) for e in session.scalars(
            select(EdgeAlarm).where(EdgeAlarm.id.in_(edges[start:start + CHUNK]))))
    return out


def _paged_on_site(sig: AlertSignal, known: _Prefetched) -> EdgeAlarm | None:
    if sig.reading_id is None:
        return None
    return known.edges.get(alarm_id(sig.patient_id, sig.rule, sig.reading_id))


def apply_signals(session: Session, signals: Iterable[AlertSignal], live: LiveIndex,
                  now: datetime | None = None, on_change: AlertHook | None = None,
                  policy: LifecyclePolicy | None = None) -> list[Alert]:
    """Apply signals inside the caller's transaction; returns alerts opened by them.

    ``live`` must be updated only if the transaction commits: callers rebuild it on failure.
    ``on_change`` hears of every change worth a notification, in this transaction.
    Give all of a batch's signals at once: the rows they touch are read in a few queries.
    """
    now = now or now_utc()
    policy = policy or DEFAULT_POLICY
    opened: list[Alert] = []
    signals = list(signals)
    if not signals:
        return opened
    known = _prefetch(session, signals, live, on_change is not None)
    for sig in signals:
        alert = live.get(session, sig.patient_id, sig.rule)
        if sig.clear:
            if alert is not None and sig.time >= alert.last_at:
                _move(session, alert, "resolved", "system", now,
                      said=Said("history.cleared", sig.text, sig.message))
                live.closed(alert)
            continue
        if alert is None:
            alert = _open(session, sig, now)
            live.opened(alert)
            opened.append(alert)
            change: str | None = "opened"
        elif sig.reading_id != alert.reading_id:
            change = _update(session, alert, sig, now, policy)
        else:
            change = None
        if change is not None:
            edge = _paged_on_site(sig, known)
            if edge is not None:  # the gateway already paged the site for this very reading
                timer(session, alert).on_site_alarm = edge.id
            elif on_change is not None:
                on_change(session, alert, change, now)
    return opened


def _open(session: Session, sig: AlertSignal, now: datetime) -> Alert:
    alert = Alert(patient_id=sig.patient_id, rule=sig.rule, severity=str(sig.severity),
                  category=str(sig.category), state="open", opened_at=sig.time,
                  last_at=sig.time, raised_at=now, value=sig.value,
                  message=sig.message, reading_id=sig.reading_id, late=sig.late, count=1,
                  details=_with_text(None, sig.text))
    session.add(alert)
    session.flush()
    _event_counts(session)[alert.id] = 0  # a new alert has no history yet: no query
    _event(session, alert, "system", "open", at=now,
           said=Said("history.raised", sig.text, sig.message))
    session.add(AlertTimer(alert_id=alert.id, state_at=now, escalation_level=0))
    return alert


def _update(session: Session, alert: Alert, sig: AlertSignal, now: datetime,
            policy: LifecyclePolicy) -> str | None:
    """A new reading for a live alert: count it; worse news or a low reopens it."""
    alert.count += 1
    if sig.time >= alert.last_at:
        alert.last_at, alert.value, alert.message = sig.time, sig.value, sig.message
        alert.reading_id = sig.reading_id
        alert.details = _with_text(alert.details, sig.text)
    worse = _RANK[sig.severity] > _RANK[Severity(alert.severity)]
    if worse:
        alert.severity = str(sig.severity)
    if alert.state == "snoozed" and (worse or sig.rule in policy.low_rules):
        timer(session, alert).snoozed_until = None
        _move(session, alert, "open", "system", now,
              said=Said("history.snooze_overridden", sig.text, sig.message))
        return "reopened"
    if alert.state == "acknowledged" and worse:
        _move(session, alert, "open", "system", now,
              said=Said("history.worse", sig.text, sig.message))
        return "reopened"
    if worse:  # no change of state, but the history says what the nurse is now told
        _event(session, alert, "system", alert.state, at=now,
               said=Said("history.worse", sig.text, sig.message))
        return "upgraded"
    return None


def _with_text(details: dict[str, Any] | None, text: Text | None) -> dict[str, Any] | None:
    """``details`` (a new dict: the JSON column sees assignments only) with the message's key
    and arguments under ``"text"``, or without any when the signal has none."""
    out = {k: v for k, v in (details or {}).items() if k != "text"}
    if text is not None:
        out["text"] = text.to_json()
    return out or None


def alert_text(alert: Alert) -> Text | None:
    """The message of an alert as key and arguments; None for alerts stored without."""
    return Text.from_json((alert.details or {}).get("text"))


def alert_messages(alert: Alert) -> dict[str, str]:
    """The alert's message per language: English as stored (``message``), each other language
    of the catalogue rendered from the alert's key and arguments when it has them and they
    render (not for alerts stored before the catalogue: readers fall back to ``message``)."""
    text = alert_text(alert)
    out = {DEFAULT_LANGUAGE: alert.message}
    for lang in LANGUAGES if text is not None else ():
        if lang not in out:
            rendered = render_or(text, lang, "")
            if rendered:
                out[lang] = rendered
    return out


def tick_lifecycle(session: Session, now: datetime, policy: LifecyclePolicy | None = None,
                   on_change: AlertHook | None = None) -> list[tuple[Alert, str]]:
    """The time-driven transitions, in the caller's transaction: snoozes that ended go back to
    open, alerts not acknowledged in time escalate one level. Safe with several workers."""
    policy = policy or DEFAULT_POLICY
    changes = _expire_snoozes(session, now) + _escalate(session, now, policy)
    if on_change is not None:
        for alert, change in changes:
            on_change(session, alert, change, now)
    return changes


def _expire_snoozes(session: Session, now: datetime) -> list[tuple[Alert, str]]:
    rows = session.execute(select(Alert, AlertTimer).join(AlertTimer)
                           .where(Alert.state == "snoozed", AlertTimer.snoozed_until <= now)
                           .order_by(Alert.id)).all()
    changes = []
    for alert, row in rows:
        if _claim(session, alert, "snoozed", "open"):
            row.snoozed_until = None
            _move(session, alert, "open", "system", now, said=Said("history.snooze_expired"))
            changes.append((alert, "snooze_expired"))
    return changes


def _escalate(session: Session, now: datetime, policy: LifecyclePolicy
              ) -> list[tuple[Alert, str]]:
    # only the alerts due (the database picks them): every unacknowledged alert loaded on
    # every tick made the tick's cost follow the alerts open, not the escalations due
    due = [and_(Alert.severity == severity, AlertTimer.state_at <= now - wait)
           for severity, wait in policy.escalate_after.items() if wait is not None]
    if not due:
        return []
    live = session.execute(
        select(Alert, AlertTimer).outerjoin(AlertTimer)
        .where(Alert.state.in_(UNACKNOWLEDGED),
               or_(AlertTimer.alert_id.is_(None),  # opened before timers existed
                   and_(AlertTimer.escalation_level < policy.max_escalation, or_(*due))))
        .order_by(Alert.id)).all()
    changes = []
    for alert, row in live:
        wait = policy.escalate_after.get(alert.severity)
        row = row or timer(session, alert)
        if wait is None or row.escalation_level >= policy.max_escalation \
                or now - row.state_at < wait:
            continue
        level = row.escalation_level
        won = _execute(session, update(AlertTimer).where(
            AlertTimer.alert_id == alert.id, AlertTimer.escalation_level == level)
            .values(escalation_level=level + 1, state_at=now)
        )
        if won.rowcount != 1:
            continue  # another worker escalated it first
        session.refresh(row)
        _move(session, alert, "escalated", "system", now, said=Said(
            "history.escalated", args=(("level", level + 1),
                                       ("minutes", wait.total_seconds() / 60))))
        changes.append((alert, "escalated"))
    return changes


def _claim(session: Session, alert: Alert, expect: str, to_state: str) -> bool:
    """Compare-and-set on the state: False when another worker (or the API) moved it."""
    done = _execute(session, update(Alert).where(Alert.id == alert.id, Alert.state == expect)
                    .values(state=to_state))
    return done.rowcount == 1


def _execute(session: Session, stmt: Update) -> CursorResult[Any]:
    """An UPDATE that leaves the session's objects alone (the caller sets them)."""
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result)


DEFAULT_POLICY = LifecyclePolicy()


def acknowledge(sessions: sessionmaker[Session], alert_id: int, who: str, comment: str | None
                ) -> Alert:
    with sessions.begin() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise AlertNotFound(alert_id)
        return acknowledge_in(session, alert, who, comment)


def acknowledge_in(session: Session, alert: Alert, who: str, comment: str | None) -> Alert:
    """Acknowledge inside the caller's transaction (the API audits in the same one)."""
    if alert.state not in ("open", "snoozed", "escalated"):
        raise AlertStateError(f"alert {alert.id} is {alert.state}, not open")
    timer(session, alert).snoozed_until = None
    _move(session, alert, "acknowledged", who, now_utc(), comment)
    return alert


def snooze(sessions: sessionmaker[Session], alert_id: int, who: str, until: datetime,
           comment: str | None = None, now: datetime | None = None) -> Alert:
    """Snooze a live alert until ``until`` (aware datetime); it comes back open by itself.

    Raises AlertNotFound, or AlertStateError when the alert is resolved or ``until`` is not in
    the future within the limit (60 min for low-glucose rules, 7 days otherwise)."""
    with sessions.begin() as session:
        return snooze_in(session, _get(session, alert_id), who, until, comment, now)


def snooze_in(session: Session, alert: Alert, who: str, until: datetime,
              comment: str | None = None, now: datetime | None = None,
              policy: LifecyclePolicy | None = None) -> Alert:
    """Snooze inside the caller's transaction (the API audits in the same one)."""
    now, policy = now or now_utc(), policy or DEFAULT_POLICY
    if alert.state not in LIVE_STATES:
        raise AlertStateError(f"alert {alert.id} is {alert.state}, not live")
    if until.tzinfo is None:
        raise AlertStateError("snooze end must carry a time zone")
    longest = policy.low_snooze_max if alert.rule in policy.low_rules else policy.snooze_max
    if not timedelta(0) < until - now <= longest:
        raise AlertStateError(f"snooze of {until - now} outside (0, {longest}] for {alert.rule}")
    timer(session, alert).snoozed_until = until
    note = f"until {iso(until)}" + (f": {comment}" if comment else "")
    _move(session, alert, "snoozed", who, now, note)
    return alert


def resolve(sessions: sessionmaker[Session], alert_id: int, who: str,
            comment: str | None = None, now: datetime | None = None) -> Alert:
    """Resolve a live alert by hand. Raises AlertNotFound or AlertStateError (resolved)."""
    with sessions.begin() as session:
        return resolve_in(session, _get(session, alert_id), who, comment, now)


def resolve_in(session: Session, alert: Alert, who: str, comment: str | None = None,
               now: datetime | None = None) -> Alert:
    """Resolve inside the caller's transaction. If the condition persists, the rules' next
    raise opens a new alert."""
    if alert.state not in LIVE_STATES:
        raise AlertStateError(f"alert {alert.id} is {alert.state}, not live")
    _move(session, alert, "resolved", who, now or now_utc(), comment)
    return alert


def record_edge_alarms(session: Session, gateway_id: str, alarms: Iterable[EdgeAlarmNotice],
                       live: LiveIndex, now: datetime | None = None) -> int:
    """A gateway paged its site for these events while the cloud was unreachable: remember
    them, so the cloud's own alert for the same event (same patient, rule and reading) does not
    page again; an alert already opened for it is marked, its pending notification cancelled.
    Idempotent (alarm ids are deterministic). Returns how many were new."""
    now = now or now_utc()
    new = 0
    for a in alarms:
        if session.get(EdgeAlarm, a.id) is not None:
            continue
        session.add(EdgeAlarm(id=a.id, gateway_id=gateway_id, patient_id=a.patient_id,
                              rule=a.rule, reading_id=a.reading_id, severity=a.severity,
                              message=a.message[:2000], measured_at=a.measured_at,
                              paged_at=a.paged_at, received_at=now))
        new += 1
        alert = live.get(session, a.patient_id, a.rule)
        if alert is not None and _cancel_first_page(session, alert, a.reading_id):
            timer(session, alert).on_site_alarm = a.id
    session.flush()
    return new


FIRST_PAGES = ("opened", "upgraded", "reopened")  # what a reading pages; escalations still go


def _cancel_first_page(session: Session, alert: Alert, reading_id: str) -> bool:
    """Drop the not yet grouped notification the reading ``reading_id`` caused for ``alert``;
    True when the alert was raised by that reading (then it is the same event)."""
    events = session.scalars(select(NotifyEvent).where(NotifyEvent.alert_id == alert.id,
                                                       NotifyEvent.change.in_(FIRST_PAGES)))
    ids = [e.id for e in events if e.body.get("reading") == reading_id]
    if ids:
        session.execute(delete(NotifyEvent).where(NotifyEvent.id.in_(ids)))
    return bool(ids) or alert.reading_id == reading_id


def _get(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    return alert


def history(sessions: sessionmaker[Session], alert_id: int) -> list[AlertEvent]:
    with sessions() as session:
        return list(session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                    .order_by(AlertEvent.seq)))
