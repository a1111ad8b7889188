"""Alarms that work with the internet down (issue 5, item 8).

The cloud's rule engine (``alerting.engine.Engine``) also runs here, on the urgent rules
only (level 2 hypoglycaemia, urgent low soon, severe blood pressure and heart rate by
default; ``[alarms] rules``), over every reading the intake takes. An urgent finding becomes
an alarm with a deterministic id (``vigie.contract.alarm_id``: patient, rule, reading).

When is the site paged from here? Only when the cloud is unreachable: the publisher has not
been connected to the cloud broker for ``offline_after_s`` seconds (60 by default; 0 pages
at once whenever the link is down). An alarm raised while the link is up is left to the
cloud, which gets the same reading and pages through its own channels; an alarm raised while
the link is down waits, and is dropped if the link returns within ``offline_after_s`` (the
reading then reaches the cloud quickly enough). "Connected" is paho's view of the link:
a silently dead link is noticed after 1.5 keepalive periods at most.

Once paged on the EHPAD's local broker (the nurse console topic of the site, QoS 1, confirmed
by PUBACK, retried with backoff until then), the alarm is sent to the cloud on
``vigie/v1/gateways/{id}/alarms`` through the publisher, before any batch of readings, so
that the cloud marks its own alert for the same event as already paged and does not page
again. Alarms live in a small SQLite file until both steps are confirmed: a restart loses
none.

The page speaks the site's language (``[alarms] language``: ``en``, the default, or ``fr``),
in the shape of the cloud's nurse console messages (``alerting.notify.message``): the fields
of version 1 keep their meaning (English ``message``), ``language``, ``title`` and, per alert,
``message_key`` and ``text`` (the alert in ``language``, rendered from the key and arguments
the rule gave; kept with the alarm in the store). What the cloud is told
(``vigie.contract.EdgeAlarm``) stays in English.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from alerting.engine import Engine
from alerting.messages import DEFAULT_LANGUAGE, LANGUAGES, Text, render_or
from alerting.notify.channels import ConfirmedPublisher
from alerting.notify.config import MqttSettings
from alerting.notify.errors import ChannelError
from alerting.notify.message import say, word
from alerting.rules import default_rules
from alerting.seam import AlertSignal, Severity
from alerting.settings import RulesConfig
from vigie.backoff import jittered
from vigie.contract import (
    EdgeAlarm,
    alarms_topic,
    encode_alarms,
    iso,
    now_utc,
    nurse_console_topic,
    parse_iso,
)
from vigie.contract import Reading as ContractReading

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_EDGE_RULES", "EdgeAlarms", "EdgeSettings"]

DEFAULT_EDGE_RULES = ("dm.hypoglycaemia", "dm.urgent_low_soon", "hf.bp_systolic",
                      "hf.heart_rate")


@dataclass(frozen=True)
class EdgeSettings:
    """``[alarms]`` of the gateway configuration."""

    site: str
    local_broker: MqttSettings
    db: Path
    rules: tuple[str, ...] = DEFAULT_EDGE_RULES
    offline_after_s: float = 60.0
    rules_config: RulesConfig = field(default_factory=RulesConfig)
    retry_max_s: float = 30.0
    language: str = DEFAULT_LANGUAGE  # of the page's ``title`` and ``text`` (LANGUAGES)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"unknown language {self.language!r} "
                             f"(known: {', '.join(LANGUAGES)})")


class AlarmStore:
    """Alarms waiting to be paged on site, then to be told to the cloud (SQLite, WAL).

    A row's ``body`` is ``EdgeAlarm.to_json()`` plus, when the rule gave one, ``text`` (key
    and arguments, ``Text.to_json()``) to page in the site's language; rows stored before
    have none and page with the English message."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS alarms (id TEXT PRIMARY KEY, "
                             "body TEXT NOT NULL, paged_at TEXT, raised_at REAL NOT NULL)")

    def add(self, alarm: EdgeAlarm, text: Text | None = None) -> bool:
        body = alarm.to_json()
        if text is not None:
            body["text"] = text.to_json()
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO alarms(id, body, raised_at) "
                                   "VALUES (?,?,?)", (alarm.id, json.dumps(body), time.time()))
            return cur.rowcount == 1

    def unpaged(self) -> list[EdgeAlarm]:
        return [alarm for alarm, _ in self.to_page()]

    def to_page(self) -> list[tuple[EdgeAlarm, Text | None]]:
        """The alarms not paged yet, each with its text (None: stored without)."""
        return self._select("paged_at IS NULL")

    def paged(self) -> list[EdgeAlarm]:
        return [alarm for alarm, _ in self._select("paged_at IS NOT NULL")]

    def _select(self, where: str) -> list[tuple[EdgeAlarm, Text | None]]:
        with self._lock:
            rows = self._db.execute(f"SELECT body, paged_at FROM alarms WHERE {where} "
                                    "ORDER BY raised_at, id").fetchall()
        out = []
        for body, paged_at in rows:
            obj = json.loads(body)
            alarm = EdgeAlarm.from_json(obj)
            if paged_at is not None:
                alarm = EdgeAlarm(alarm.patient_id, alarm.rule, alarm.reading_id,
                                  alarm.severity, alarm.message, alarm.value,
                                  alarm.measured_at, parse_iso(paged_at))
            out.append((alarm, Text.from_json(obj.get("text"))))
        return out

    def mark_paged(self, alarm_id: str, at: datetime) -> None:
        with self._lock:
            self._db.execute("UPDATE alarms SET paged_at=? WHERE id=?", (iso(at), alarm_id))

    def forget(self, alarm_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM alarms WHERE id=?", (alarm_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EdgeAlarms:
    """Evaluates readings (``observe``, from the intake), pages on site (``run``, a thread),
    and feeds the publisher with the alarms to tell the cloud (``pending``/``sent``)."""

    def __init__(self, gateway_id: str, settings: EdgeSettings,
                 offline_for: Callable[[], float | None],
                 clock: Callable[[], datetime] = now_utc) -> None:
        self.gateway_id = gateway_id
        self.s = settings
        self._offline_for = offline_for
        self._clock = clock
        rules = [r for r in default_rules() if r.id in settings.rules]
        unknown = set(settings.rules) - {r.id for r in rules}
        if unknown:
            raise ValueError(f"unknown alarm rules {sorted(unknown)}")
        self._engine = Engine(settings.rules_config, rules=rules)
        self._engine_lock = threading.Lock()
        self.store = AlarmStore(settings.db)
        self._console = ConfirmedPublisher(settings.local_broker, timeout=5.0)
        self._topic = nurse_console_topic(settings.site)
        self._retry_at = 0.0
        self._attempt = 0
        self._rng = random.Random()
        self.stats: dict[str, Any] = {"raised": 0, "paged": 0, "left_to_cloud": 0,
                                      "told_cloud": 0, "last_error": None}

    # -- intake side -------------------------------------------------------------------
    def observe(self, readings: Sequence[ContractReading]) -> None:
        """Evaluate readings just taken; keep the urgent alarms raised while offline."""
        with self._engine_lock:
            signals = [s for r in readings for s in self._engine.evaluate(r)]
        for sig in signals:
            if sig.clear or sig.late or sig.severity is not Severity.URGENT \
                    or sig.reading_id is None:
                continue
            self.stats["raised"] += 1
            if self._offline_for() is None:
                self.stats["left_to_cloud"] += 1  # the cloud gets the reading and pages
                continue
            if self.store.add(self._alarm(sig, sig.reading_id), sig.text):
                log.warning("urgent alarm %s with the cloud unreachable", sig.rule)

    @staticmethod
    def _alarm(sig: AlertSignal, reading_id: str) -> EdgeAlarm:
        return EdgeAlarm(sig.patient_id, sig.rule, reading_id, str(sig.severity),
                         sig.message, sig.value, sig.time, sig.time)

    # -- paging thread -----------------------------------------------------------------
    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        try:
            while not stop.wait(interval):
                self.step()
        finally:
            self._console.close()

    def close(self) -> None:
        """After the publisher stopped (it reads the store to tell the cloud)."""
        self._console.close()
        self.store.close()

    def step(self) -> None:
        offline = self._offline_for()
        for alarm, text in self.store.to_page():
            if offline is None:
                self.store.forget(alarm.id)  # the link is back in time: the cloud pages
                self.stats["left_to_cloud"] += 1
            elif offline >= self.s.offline_after_s and time.monotonic() >= self._retry_at:
                self._page(alarm, text)

    def _page(self, alarm: EdgeAlarm, text: Text | None = None) -> None:
        now = self._clock()
        try:
            self._console.publish(self._topic, self._console_payload(alarm, now, text))
        except ChannelError as exc:
            self._attempt += 1
            delay = jittered(self._attempt, 0.5, self.s.retry_max_s, self._rng)
            self._retry_at = time.monotonic() + delay
            self.stats["last_error"] = str(exc)
            log.error("cannot page the site (retry in %.1f s): %s", delay, exc)
            return
        self._attempt = 0
        self.store.mark_paged(alarm.id, now)
        self.stats["paged"] += 1
        log.warning("paged the site's nurse console: %s", alarm.rule)

    def _console_payload(self, alarm: EdgeAlarm, now: datetime, text: Text | None = None
                         ) -> bytes:
        """The cloud's message shape (``alerting.notify.message``), with the alarm id, in
        the site's language (module docstring)."""
        lang = self.s.language
        said = alarm.message if lang == DEFAULT_LANGUAGE else render_or(text, lang,
                                                                         alarm.message)
        title = say("notify.subject", lang,
                    severity=word("severity", alarm.severity, lang).upper(), escalated="",
                    patient=alarm.patient_id, n=1, headline=said)
        body = {"v": 1, "id": alarm.id, "site": self.s.site, "patient": alarm.patient_id,
                "created_at": iso(now), "severity": alarm.severity,
                "source": f"gateway:{self.gateway_id}", "language": lang, "title": title,
                "alerts": [{"alarm_id": alarm.id, "change": "opened", "rule": alarm.rule,
                            "severity": alarm.severity, "message": alarm.message,
                            "message_key": None if text is None else text.key, "text": said,
                            "value": alarm.value, "time": iso(alarm.measured_at), "level": 0,
                            "late": False, "at": iso(now), "reading": alarm.reading_id}]}
        return json.dumps(body, separators=(",", ":")).encode()

    # -- publisher feed: tell the cloud what was paged here ------------------------------
    def pending(self) -> list[tuple[str, str, bytes]]:
        return [(a.id, alarms_topic(self.gateway_id), encode_alarms(self.gateway_id, [a]))
                for a in self.store.paged()]

    def sent(self, key: str) -> None:
        self.store.forget(key)
        self.stats["told_cloud"] += 1
