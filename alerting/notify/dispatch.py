"""Grouping, routing and delivery with retries, over a durable outbox.

Two stages, each crash-safe:

1. **Plan.** Alert changes wait in the outbox as ``PendingEvent`` rows (written in the alert's
   own transaction). Once the oldest change of a patient is ``window_s`` old (Alertmanager's
   ``group_wait``), all that patient's pending changes become one ``Message`` per matching
   route, stored as ``Delivery`` rows in the same transaction that deletes the events. A
   nurse's round that raises three alerts for one patient brings one message.
2. **Deliver.** A due delivery is claimed (a lease, so two dispatchers never send it at the
   same time), sent, and deleted only when its channel confirmed it (HTTP 2xx, SMTP 250, MQTT
   PUBACK). A failure reschedules it with capped exponential backoff and full jitter. A
   channel down for hours loses nothing; when it returns, what waited is sent, at least once
   (receivers deduplicate on the message key).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from alerting.notify.config import Route, RoutingConfig
from alerting.notify.errors import ChannelError
from alerting.notify.message import AlertNotice, Message
from vigie.backoff import jittered
from vigie.contract import iso, now_utc

log = logging.getLogger(__name__)

__all__ = ["Channel", "Delivery", "Dispatcher", "NotifyOutbox", "PendingEvent", "backoff",
           "plan"]

HANDLED = ("acknowledged", "resolved", "snoozed")  # no page for what a person already took


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    patient_id: str
    site: str | None
    created_at: datetime
    notice: AlertNotice
    alert_state: str | None = None  # the alert's state when planning (None: unknown)


@dataclass(frozen=True, slots=True)
class Delivery:
    key: str
    channel: str
    route: str
    site: str | None
    patient_id: str
    message: Message
    attempts: int = 0
    next_at: datetime | None = None


class NotifyOutbox(Protocol):
    """The durable store (``cloud_api.notifications.SqlNotifyOutbox``)."""

    def pending(self) -> list[PendingEvent]:
        """Every pending alert change, oldest first."""
        ...

    def plan(self, events: Sequence[PendingEvent], deliveries: Sequence[Delivery]) -> bool:
        """Atomically replace ``events`` by ``deliveries``; False if another dispatcher took
        some of the events first (nothing changed)."""
        ...

    def due(self, now: datetime, limit: int) -> list[Delivery]: ...

    def claim(self, delivery: Delivery, until: datetime) -> bool:
        """Take a due delivery until ``until``; False if someone else has it."""
        ...

    def delivered(self, key: str) -> None: ...

    def failed(self, key: str, attempts: int, next_at: datetime, error: str) -> None: ...


class Channel(Protocol):
    def send(self, route: Route, message: Message) -> None:
        """Deliver and return once the peer confirmed; raise ChannelError otherwise."""
        ...

    def close(self) -> None: ...


def _key(route: Route, events: Sequence[PendingEvent]) -> str:
    ids = ",".join(str(e.id) for e in events)
    return hashlib.blake2b(f"{route.name}|{ids}".encode(), digest_size=16).hexdigest()


def plan(events: Sequence[PendingEvent], config: RoutingConfig, now: datetime
         ) -> list[Delivery]:
    """The messages one patient's pending changes make: one per route that wants any."""
    live = [e for e in events if e.alert_state not in HANDLED]
    out = []
    for route in config.routes:
        wanted = [e for e in live if route.wants(e.site, e.notice.severity, e.notice.level,
                                                 e.notice.change)]
        if not wanted:
            continue
        key = _key(route, wanted)
        message = Message(key, wanted[0].site, wanted[0].patient_id, iso(now),
                          tuple(e.notice for e in wanted))
        out.append(Delivery(key, route.channel, route.name, message.site, message.patient_id,
                            message, 0, now))
    return out


def backoff(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (attempt counts from 1)."""
    return jittered(attempt - 1, low, high, rng)


class Dispatcher:
    """Plans due groups and delivers due messages; ``step`` once, or ``run`` in a thread."""

    def __init__(self, outbox: NotifyOutbox, config: RoutingConfig,
                 channels: Mapping[str, Channel], clock: Callable[[], datetime] = now_utc,
                 rng: random.Random | None = None) -> None:
        self.outbox = outbox
        self.config = config
        self.channels = dict(channels)
        self.clock = clock
        self._rng = rng or random.Random()
        self.stats: dict[str, Any] = {"planned": 0, "delivered": 0, "failures": 0,
                                      "last_error": None}

    def step(self) -> int:
        """One pass: plan the groups whose window passed, send what is due. Returns how many
        messages were confirmed."""
        now = self.clock()
        self._plan_due(now)
        sent = 0
        for delivery in self.outbox.due(now, limit=100):
            sent += self._deliver(delivery, now)
        return sent

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the store may be briefly unavailable: keep the thread
                self.stats["last_error"] = str(exc)
                log.exception("notification dispatch failed; retrying")
                stop.wait(5.0)
            stop.wait(interval)
        self.close()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def _plan_due(self, now: datetime) -> None:
        window = timedelta(seconds=self.config.grouping.window_s)
        groups: dict[str, list[PendingEvent]] = {}
        for event in self.outbox.pending():
            groups.setdefault(event.patient_id, []).append(event)
        for events in groups.values():
            if now - min(e.created_at for e in events) < window:
                continue
            deliveries = plan(events, self.config, now)
            if self.outbox.plan(events, deliveries):
                self.stats["planned"] += len(deliveries)
                log.debug("grouped %d change(s) into %d message(s)", len(events),
                          len(deliveries))

    def _deliver(self, delivery: Delivery, now: datetime) -> int:
        retry = self.config.retry
        if not self.outbox.claim(delivery, now + timedelta(seconds=retry.lease_s)):
            return 0
        route = self.config.route(delivery.route)
        channel = self.channels.get(delivery.channel)
        try:
            if route is None or channel is None:
                raise ChannelError(delivery.channel, f"no route {delivery.route!r} in the "
                                   "routing file any more", permanent=True)
            channel.send(route, delivery.message)
        except ChannelError as exc:
            self._failed(delivery, exc)
            return 0
        self.outbox.delivered(delivery.key)
        self.stats["delivered"] += 1
        return 1

    def _failed(self, delivery: Delivery, exc: ChannelError) -> None:
        attempts = delivery.attempts + 1
        retry = self.config.retry
        delay = backoff(attempts, retry.min_s, retry.max_s, self._rng)
        if exc.permanent:
            delay = retry.max_s  # keep it, slowly, until an operator fixes the route
        self.stats["failures"] += 1
        self.stats["last_error"] = str(exc)
        level = logging.ERROR if exc.permanent else logging.WARNING
        log.log(level, "%s not delivered (attempt %d), retry in %.1f s: %s", delivery.route,
                attempts, delay, exc.reason)
        self.outbox.failed(delivery.key, attempts, self.clock() + timedelta(seconds=delay),
                           str(exc)[:2000])
