"""The notification outbox in the relational store, and the dispatcher of ``vigie cloud run``.

``enqueue`` is the ``AlertHook`` ingest hands to ``cloud_api.alerts``: it writes a
``NotifyEvent`` in the transaction of the alert change, so an alert never opens or escalates
without its notification, and a crash never sends a page for an alert that did not commit.
``SqlNotifyOutbox`` implements ``alerting.notify.NotifyOutbox`` on the same tables; every
write is a compare-and-set, so several cloud processes may dispatch from one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.notify import AlertNotice, Delivery, Dispatcher, Message, PendingEvent
from alerting.notify.channels import EmailChannel, NurseConsoleChannel, WebhookChannel
from alerting.notify.config import RoutingConfig
from alerting.notify.dispatch import Channel
from cloud_api.alerts import alert_text, timer
from cloud_api.db import Alert, NotifyDelivery, NotifyEvent, Patient
from vigie.contract import iso, now_utc

__all__ = ["SqlNotifyOutbox", "enqueue", "make_dispatcher"]


def enqueue(session: Session, alert: Alert, change: str, now: datetime) -> None:
    """Queue a notification for an alert change, in the caller's transaction."""
    patient = session.get(Patient, alert.patient_id)
    notice = AlertNotice(alert_id=alert.id, change=change, rule=alert.rule,
                         severity=alert.severity, category=alert.category,
                         message=alert.message, value=alert.value, time=iso(alert.last_at),
                         level=timer(session, alert).escalation_level, late=alert.late,
                         at=iso(now), reading=alert.reading_id, text=alert_text(alert))
    session.add(NotifyEvent(alert_id=alert.id, patient_id=alert.patient_id,
                            site_id=None if patient is None else patient.site_id,
                            change=change, created_at=now, body=notice.to_json()))


class _Taken(Exception):
    pass


def _rows(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class SqlNotifyOutbox:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def pending(self) -> list[PendingEvent]:
        with self.sessions() as session:
            rows = session.execute(select(NotifyEvent, Alert.state).outerjoin(
                Alert, Alert.id == NotifyEvent.alert_id).order_by(NotifyEvent.id)).all()
            return [PendingEvent(e.id, e.patient_id, e.site_id, e.created_at,
                                 AlertNotice.from_json(e.body), state) for e, state in rows]

    def plan(self, events: Sequence[PendingEvent], deliveries: Sequence[Delivery]) -> bool:
        ids = [e.id for e in events]
        try:
            with self.sessions.begin() as session:
                gone = _rows(session.execute(delete(NotifyEvent).where(NotifyEvent.id.in_(ids))))
                if gone != len(ids):
                    raise _Taken  # another dispatcher planned some of them: roll back
                for d in deliveries:
                    at = d.next_at or now_utc()
                    session.add(NotifyDelivery(key=d.key, channel=d.channel, route=d.route,
                                               site_id=d.site, patient_id=d.patient_id,
                                               created_at=at, next_at=at, attempts=0,
                                               body=d.message.to_json()))
        except _Taken:
            return False
        return True

    def due(self, now: datetime, limit: int) -> list[Delivery]:
        with self.sessions() as session:
            rows = session.scalars(select(NotifyDelivery).where(NotifyDelivery.next_at <= now)
                                   .order_by(NotifyDelivery.next_at, NotifyDelivery.id)
                                   .limit(limit))
            return [Delivery(r.key, r.channel, r.route, r.site_id, r.patient_id,
                             Message.from_json(r.body), r.attempts, r.next_at) for r in rows]

    def claim(self, delivery: Delivery, until: datetime) -> bool:
        with self.sessions.begin() as session:
            return _rows(session.execute(
                update(NotifyDelivery).where(NotifyDelivery.key == delivery.key,
                                             NotifyDelivery.next_at == delivery.next_at)
                .values(next_at=until))) == 1

    def delivered(self, key: str) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(NotifyDelivery).where(NotifyDelivery.key == key))

    def failed(self, key: str, attempts: int, next_at: datetime, error: str) -> None:
        with self.sessions.begin() as session:
            session.execute(update(NotifyDelivery).where(NotifyDelivery.key == key)
                            .values(attempts=attempts, next_at=next_at, last_error=error))

    def depth(self) -> dict[str, int]:
        with self.sessions() as session:
            events = len(session.scalars(select(NotifyEvent.id)).all())
            deliveries = len(session.scalars(select(NotifyDelivery.id)).all())
        return {"pending_changes": events, "undelivered": deliveries}


def make_dispatcher(config: RoutingConfig, sessions: sessionmaker[Session]) -> Dispatcher:
    timeout = config.retry.timeout_s
    channels: dict[str, Channel] = {"webhook": WebhookChannel(timeout)}
    if config.smtp is not None:
        channels["email"] = EmailChannel(config.smtp, timeout)
    if config.mqtt is not None:
        channels["nurse_console"] = NurseConsoleChannel(config.mqtt, timeout)
    return Dispatcher(SqlNotifyOutbox(sessions), config, channels)
