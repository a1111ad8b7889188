"""Helpers of the notification tests (not a test module): a store with alerts raised through
``cloud_api.alerts`` (so changes are queued as ingest queues them), a hand-driven clock, and a
real HTTP receiver on loopback that verifies webhook signatures as a hospital's would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.messages import Text
from alerting.notify import Dispatcher, RoutingConfig, parse_routing, verify
from alerting.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from alerting.seam import AlertSignal, Category, Severity
from cloud_api import alerts, notifications
from cloud_api.db import NotifyDelivery, NotifyEvent, make_engine, make_sessions
from cloud_api.tenancy import register_patient
from tests.dbkit import database_url

T0 = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests"
# what the level 2 hypoglycaemia rule says of a glucose of 48 mg/dL
HYPO2 = Text.of("dm.hypoglycaemia.level2", {"value": 48.0, "threshold": 54.0})
HYPO2_EN = "level 2 hypoglycaemia 48 mg/dL (< 54)"
HYPO2_FR = "Hypoglycémie de niveau 2 : 48 mg/dL (< 54)"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Cloud:
    """The relational store with ingest's alert path and an injected clock."""

    def __init__(self, tmp: Path, clock: Clock) -> None:
        self.engine = make_engine(database_url(tmp))
        self.sessions: sessionmaker[Session] = make_sessions(self.engine)
        self.clock = clock
        with self.sessions() as session:
            self.live = alerts.LiveIndex(session)
        self._n = 0

    def patient(self, pid: str, site: str | None) -> None:
        with self.sessions.begin() as session:
            register_patient(session, pid, site)

    def raise_(self, pid: str, rule: str, severity: Severity = Severity.URGENT,
               text: Text | None = None) -> int:
        """Raise an alert; its message is ``text`` in English, or (no ``text``: an alert as
        stored before the catalogue) "<rule> is <severity>"."""
        self._n += 1
        message = f"{rule} is {severity}" if text is None else text.render("en")
        sig = AlertSignal(patient_id=pid, rule=rule, severity=severity,
                          category=Category.CLINICAL, time=self.clock.now, value=45.0,
                          message=message, reading_id=f"r-{self._n}", text=text)
        with self.sessions.begin() as session:
            opened = alerts.apply_signals(session, [sig], self.live, self.clock.now,
                                          notifications.enqueue)
            return opened[0].id if opened else -1

    def tick(self) -> None:
        with self.sessions.begin() as session:
            alerts.tick_lifecycle(session, self.clock.now, on_change=notifications.enqueue)

    def depth(self) -> tuple[int, int]:
        with self.sessions() as session:
            return (len(session.scalars(select(NotifyEvent.id)).all()),
                    len(session.scalars(select(NotifyDelivery.id)).all()))

    def close(self) -> None:
        self.engine.dispose()


def routing(tmp: Path, routes: list[dict[str, Any]], **tables: Any) -> RoutingConfig:
    base = {"grouping": {"window_s": 30}, "retry": {"min_s": 1, "max_s": 60, "timeout_s": 5},
            **tables, "routes": routes}
    return parse_routing(base, tmp)


def dispatcher(cloud: Cloud, config: RoutingConfig) -> Dispatcher:
    import random

    d = notifications.make_dispatcher(config, cloud.sessions)
    d.clock = cloud.clock
    d._rng = random.Random(7)  # deterministic jitter
    return d


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    valid: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1:port that checks signatures with ``verify``; answers
    the statuses in ``answers`` in turn (then 200)."""

    port: int
    secret: str = SECRET
    answers: list[int] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/vigie"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(receiver.secret.encode(), self.headers[TIMESTAMP_HEADER], body,
                            self.headers[SIGNATURE_HEADER], now=time.time())
                receiver.hits.append(Hit(dict(self.headers), body, ok))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def delivered(self) -> list[Hit]:
        """Accepted hits, one per delivery key (what the receiver acts on)."""
        return [h for h in self.hits if h.valid and h.headers.get(DELIVERY_HEADER)]


def serve(receiver: Receiver) -> Iterator[Receiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
