"""MQTT ingest: observation batches -> InfluxDB -> rules, acknowledged only after the write.

The MQTT client (``vigie.mqtt``) runs paho's network loop in its own thread and hands messages
over a queue; this worker takes
what has arrived (up to ``max_messages``), validates every reading, writes the good ones to
InfluxDB in one request, records stream gaps, quarantine and alerts in the relational store, and
only then sends the PUBACKs (MQTT v5, manual acknowledgement, persistent session). A crash or an
InfluxDB outage before that point leaves the messages unacknowledged: the broker redelivers
them and the idempotent writes make the redelivery harmless. Bad input is quarantined with
its reason and acknowledged: it never blocks the stream and never crashes the worker.
Once recorded, the readings stored or quarantined are named to their gateways
(``stages.acknowledge``), which delete them from their outboxes only then.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerting.seam import Clocked, Configurable, Evaluator, Forgets, Prepares
from alerting.settings import WarmUpError
from cloud_api import streams
from cloud_api.alerts import (
    AlertHook,
    LifecyclePolicy,
    LiveIndex,
    apply_signals,
    record_edge_alarms,
    tick_lifecycle,
)
from cloud_api.db import Alert, Gateway, PendingGateway, Quarantine
from cloud_api.errors import ConfigError, StoreUnavailable
from cloud_api.gateway_config import ConfigPublisher
from cloud_api.influx import TimeSeriesStore
from cloud_api.profiles import ProfileSync
from cloud_api.stages.acknowledge import Confirmations, stored_messages
from cloud_api.stages.authorise import Registry, authorise
from cloud_api.stages.decode import decode_message
from cloud_api.stages.refusal import code_of, refusal
from cloud_api.stages.store import write_isolating
from cloud_api.stages.work import Sited, Work
from vigie.contract import (
    ALARMS_SUBSCRIPTION,
    OBSERVATIONS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    ContractError,
    gateway_from_topic,
    now_utc,
)
from vigie.mqtt import BadSettings, Message, MqttClient, Options, Tls

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400


@dataclass
class IngestStats:
    messages: int = 0
    readings_stored: int = 0
    quarantined: int = 0
    write_retries: int = 0
    alerts_opened: int = 0
    connected: bool = False
    subscribed: bool = False
    last_error: str | None = None
    # quarantined items by a short, bounded code (``cloud_api.stages.Refusal.code``)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    alerts_by_rule: dict[str, int] = field(default_factory=dict)  # alerts opened, per rule
    store_ok: bool = True  # the last InfluxDB write (or retry) succeeded
    loop_at: float = field(default_factory=time.monotonic)  # worker loop last went round
    extra: dict[str, Any] = field(default_factory=dict)


class LatencyWindow:
    """Reading-to-stored latency (gateway receive time to InfluxDB write acknowledged), ms,
    over the last ``size`` readings. The gateway's and the cloud's clocks are both NTP."""

    def __init__(self, size: int = 10_000) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, stored_at: datetime, readings: Sequence[Sited]) -> None:
        self._values.extend((stored_at - r.received_at).total_seconds() * 1000
                            for r, _ in readings)

    def summary(self) -> dict[str, float | int]:
        values = sorted(self._values)
        if not values:
            return {"count": 0}
        return {"count": len(values), "p50_ms": values[len(values) // 2],
                "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))]}


# Failures worth retrying as they are (a locked database, a store away during a warm-up) before
# the messages in hand are suspected; past TRANSIENT_ATTEMPTS they are bisected like any other.
TRANSIENT: Final = (OperationalError, IntegrityError, WarmUpError, StoreUnavailable)
TRANSIENT_ATTEMPTS: Final = 5


class Ingest:
    def __init__(self, store: TimeSeriesStore, sessions: sessionmaker[Session],
                 evaluator: Evaluator, host: str, port: int, client_id: str = "vigie-ingest-1",
                 share_group: str | None = None, max_messages: int = 100,
                 tls: Tls | None = None, clocked: Clocked | None = None,
                 tick_s: float = 10.0, lifecycle: LifecyclePolicy | None = None,
                 on_alert_change: AlertHook | None = None,
                 publish_device_lists: bool = True,
                 subscriptions: Sequence[str] | None = None) -> None:
        self.lifecycle = lifecycle  # escalation and snooze expiry, on the tick (None: defaults)
        self.on_alert_change = on_alert_change  # notification outbox (None: no notifications)
        self.store = store
        self.clocked = clocked  # rules that fire on time passing (silence): ticked here
        self._tick_s = tick_s
        self._next_tick = 0.0
        self.tls = tls
        self.sessions = sessions
        self.evaluator = evaluator
        self.host, self.port = host, port
        self.max_messages = max_messages
        self.stats = IngestStats()
        self.latency = LatencyWindow()
        # messages from paho's thread, with the monotonic time each arrived (ingest lag)
        self._queue: queue.Queue[tuple[float, Message]] = queue.Queue()
        self._in_hand_since: float | None = None  # arrival of the oldest message in hand
        if subscriptions is None:
            prefix = f"$share/{share_group}/" if share_group else ""
            subscriptions = [prefix + OBSERVATIONS_SUBSCRIPTION, prefix + STATUS_SUBSCRIPTION,
                             prefix + ALARMS_SUBSCRIPTION]
        self.client = self._make_client(client_id)
        for topic_filter in subscriptions:
            self.client.subscribe(topic_filter, self._on_message)
        self._live: LiveIndex | None = None
        self.registry = Registry()  # sites of gateways and patients (the authorise stage)
        self._current: Work | None = None  # the batch being processed (forgotten on failure)
        self._profiles: ProfileSync | None = None
        # device lists pushed to gateways (cloud_api.gateway_config): one worker only
        self.device_lists = (ConfigPublisher(sessions, self.client)
                             if publish_device_lists else None)
        # readings durable here, named to their gateways (cloud_api.stages.acknowledge)
        self.confirmations = Confirmations(self.client)

    def _make_client(self, client_id: str) -> MqttClient:
        """Persistent session (a week), manual acknowledgement, up to 1,000 messages in
        flight towards this worker; in the secure profile the broker names the session after
        the certificate (``vigie pki init`` issues ``vigie-ingest-1``), not ``client_id``."""
        options = Options(host=self.host, port=self.port, client_id=client_id, keepalive=30,
                          tls=self.tls, clean_start=False, session_expiry_s=SESSION_EXPIRY_S,
                          receive_maximum=1000, manual_ack=True, reconnect_delay=(1, 10))
        try:
            client = MqttClient(options)
        except BadSettings as exc:
            raise ConfigError(str(exc)) from exc
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        return client

    def _on_subscribe(self, granted: bool) -> None:
        if granted:
            self.stats.subscribed = True
        else:
            self.stats.last_error = self.client.last_error

    def _on_connect(self, session_present: bool) -> None:
        self.stats.connected = True
        log.info("ingest connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, reason: int) -> None:
        self.stats.connected = self.stats.subscribed = False

    def _on_message(self, msg: Message) -> None:
        self._queue.put((time.monotonic(), msg))

    def lag_s(self) -> float:
        """Age, in seconds, of the oldest message received and not yet acknowledged (0 when
        none waits): what ``/ready`` and the ``vigie_ingest_lag_seconds`` metric report."""
        oldest = self._in_hand_since
        with self._queue.mutex:
            if self._queue.queue:
                first = self._queue.queue[0][0]
                oldest = first if oldest is None else min(oldest, first)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)
    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()

    def run(self, stop: threading.Event) -> None:
        """Process messages until ``stop`` is set (messages in hand stay unacknowledged).

        Nothing a message holds ends this loop: a batch whose handling fails is retried while
        the failure looks transient, then halved until the message at fault stands alone and
        is quarantined (``_dead_letter``), the others going through as usual."""
        self.start()
        try:
            while not stop.is_set():
                self.stats.loop_at = time.monotonic()
                if self._tick_due():
                    self._guarded(lambda: self._tick(now_utc()), stop)
                batch = self._take(timeout=0.2)
                if batch:
                    self._in_hand_since = batch[0][0]
                    try:
                        self._guarded(partial(self._process_isolating,
                                              [msg for _, msg in batch], stop, set()), stop)
                    finally:
                        self._in_hand_since = None
                self._publish_device_lists()
        finally:
            self.stop()

    def _guarded(self, step: Callable[[], None], stop: threading.Event) -> None:
        """Run ``step`` until it completes or ``stop`` is set, whatever it raises (a database
        that cannot even take a quarantine record): wait, then try again."""
        delay = 0.5
        while not stop.is_set():
            try:
                step()
                return
            except Exception as exc:
                log.exception("ingest step failed; retrying in %.1f s", delay)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
                self._after_failed_record()
                if stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)

    def _process_isolating(self, messages: list[Message], stop: threading.Event,
                           done: set[int]) -> None:
        """``process`` the messages not yet ``done``; on an unexpected failure, the halves
        on their own, so that one message at fault is found in ``2 log2(n)`` tries and
        quarantined on its own (the dead-letter rule), never retried for ever."""
        todo = [m for m in messages if id(m) not in done]
        attempts = 0
        while todo and not stop.is_set():
            try:
                if self.process(todo, stop):
                    done.update(id(m) for m in todo)
                return
            except TRANSIENT as exc:
                attempts += 1
                self._after_failed_record()
                if attempts < TRANSIENT_ATTEMPTS:
                    log.warning("batch not recorded (%s); retry %d", exc, attempts)
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    if stop.wait(0.2 * attempts):
                        return
                    continue
                failure: Exception = exc
            except Exception as exc:
                log.exception("a batch of %d messages failed", len(todo))
                self._after_failed_record()
                failure = exc
            if len(todo) == 1:
                self._dead_letter(todo[0], failure)
                done.add(id(todo[0]))
                return
            half = len(todo) // 2
            self._process_isolating(todo[:half], stop, done)
            self._process_isolating(todo[half:], stop, done)
            return

    def _dead_letter(self, msg: Message, exc: Exception) -> None:
        """Quarantine a message whose handling failed on its own, then acknowledge it."""
        try:
            gateway: str | None = gateway_from_topic(msg.topic)
        except ContractError:
            gateway = None
        row = refusal(msg.topic, gateway, "poison",
                      f"handling failed: {type(exc).__name__}: {exc}", bytes(msg.payload))
        log.error("quarantining a message of %s whose handling failed: %s",
                  gateway or msg.topic[:100], exc)
        with self.sessions.begin() as session:
            session.add(row)
        self._count_refusals([row])
        self.client.ack(msg)

    def _publish_device_lists(self) -> None:
        if self.device_lists is None:
            return
        try:
            self.device_lists.step(self.stats.connected)
        except SQLAlchemyError as exc:  # a locked database: next poll; never stop ingest
            log.warning("device lists not published this round: %s", exc)

    def _take(self, timeout: float) -> list[tuple[float, Message]]:
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.max_messages:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    # -- processing ---------------------------------------------------------------------
    def process(self, messages: Sequence[Message], stop: threading.Event) -> bool:
        """Decode, write, record, then acknowledge. False when stopped before the write."""
        work = Work()
        self._current = work
        now = now_utc()
        for msg in messages:
            self._classify(msg, work, now)
        self._authorise(work)
        if not self._write(work, stop):
            return False
        self._record(work)
        self._confirm(work)
        for msg in messages:
            self.client.ack(msg)
        self.stats.messages += len(messages)
        return True

    def _classify(self, msg: Message, work: Work, now: datetime) -> None:
        decode_message(msg.topic, bytes(msg.payload), now, work)

    def _confirm(self, work: Work) -> None:
        """Name to each gateway its readings now durable here, stored or quarantined, once
        recorded (``cloud_api.stages.acknowledge``): it deletes them from its outbox."""
        try:  # after the commit: a failure here must never make the batch look poisonous
            self.confirmations.send(stored_messages(work.readings, work.quarantine))
        except Exception:
            log.exception("confirmations not sent; the gateways will send those readings again")

    def _authorise(self, work: Work) -> None:
        with self.sessions() as session:
            authorise(work, self.registry, session)

    def _write(self, work: Work, stop: threading.Event) -> bool:
        """Write the batch's readings; the ones InfluxDB refuses go to quarantine. While
        InfluxDB is away, retry with a growing delay. False when stopped first."""
        delay = 0.2
        while work.readings:
            try:
                kept, refused = write_isolating(self.store, work.readings, time.time_ns())
            except StoreUnavailable as exc:
                self.stats.write_retries += 1
                self.stats.store_ok = False
                self.stats.last_error = str(exc)
                log.warning("InfluxDB unavailable (%s); retrying in %.1f s", exc, delay)
                if not self._wait_publishing(stop, delay):
                    return False
                delay = min(delay * 2, 5.0)
                continue
            self.stats.store_ok = True
            for (reading, _), why in refused:
                log.error("InfluxDB refused reading %s: %s", reading.id, why)
                work.quarantine.append(refusal("", reading.gateway_id, "store", why,
                                               reading.to_json(), reading.id))
            work.readings = kept
            self.latency.add(now_utc(), kept)
            return True
        return True

    def _wait_publishing(self, stop: threading.Event, delay: float) -> bool:
        """Wait ``delay`` before the next write attempt, publishing device lists meanwhile:
        a nurse's assignment does not wait for InfluxDB. False when stopped."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            self.stats.loop_at = time.monotonic()  # alive, waiting for InfluxDB
            self._publish_device_lists()
            if stop.wait(min(left, 0.5)):
                return False
        return True

    def _record(self, work: Work) -> None:
        now = now_utc()
        try:
            self._record_in(work, now)
        except BaseException:
            self._live = None  # the cache may hold what the rolled-back transaction did
            raise
        self.stats.readings_stored += len(work.readings)
        self._count_refusals(work.quarantine)

    def _count_refusals(self, rows: Sequence[Quarantine]) -> None:
        self.stats.quarantined += len(rows)
        counts = self.stats.quarantined_by_reason
        for row in rows:
            code = code_of(row)
            counts[code] = counts.get(code, 0) + 1

    def _after_failed_record(self) -> None:
        """Forget what a rolled-back transaction may have left in memory: the alert index,
        the patients registered, and the engine's state of the batch's patients (their
        readings are evaluated again, from storage, when redelivered)."""
        self._live = None
        self.registry.forget()
        if self._current is not None and isinstance(self.evaluator, Forgets):
            self.evaluator.forget(self._current.patients())

    def _record_in(self, work: Work, now: datetime) -> None:
        with self.sessions.begin() as session:
            if self._live is None:
                self._live = LiveIndex(session)
            for q in work.quarantine:
                log.warning("quarantined from %s: %s", q.gateway_id or q.topic, q.reason)
                session.add(q)
            self._record_streams(session, work, now)
            self._record_pending(session, work, now)
            for gateway, body in work.statuses:
                self._record_status(session, gateway, body)
                if self.clocked is not None:
                    self.clocked.heartbeat(gateway, now)
            for gateway, alarms in work.alarms:  # before the rules: no second page
                record_edge_alarms(session, gateway, alarms, self._live, now)
            self._apply_rules(session, work, now)

    def _tick(self, now: datetime) -> None:
        """The clocked rules (silence), care-team edits and the alert timers, in a
        transaction of their own, between batches: a batch that fails never takes the tick
        with it, nor the tick a batch."""
        if self.clocked is None:
            return
        try:
            self._tick_once(self.clocked, now)
        finally:
            # counted from the end: a tick longer than the period does not start the next
            # one at once, which would leave the batches no time (issue 12)
            self._next_tick = time.monotonic() + self._tick_s

    def _tick_once(self, clocked: Clocked, now: datetime) -> None:
        with self.sessions.begin() as session:
            if self._live is None:
                self._live = LiveIndex(session)
            if isinstance(self.evaluator, Configurable):
                if self._profiles is None or self._profiles.engine is not self.evaluator:
                    self._profiles = ProfileSync(self.evaluator)  # a new engine: all of them
                self._profiles(session)  # care-team edits since the last tick
            self._count_opened(apply_signals(session, clocked.tick(now), self._live, now,
                                             self.on_alert_change, self.lifecycle))
            tick_lifecycle(session, now, self.lifecycle, self.on_alert_change)

    def _count_opened(self, opened: Sequence[Alert]) -> None:
        self.stats.alerts_opened += len(opened)
        by_rule = self.stats.alerts_by_rule
        for alert in opened:
            by_rule[alert.rule] = by_rule.get(alert.rule, 0) + 1

    def _apply_rules(self, session: Session, work: Work, now: datetime) -> None:
        """Evaluate the stored readings, in the caller's transaction (``cloud_api.sharding``
        moves this to the patient's shard)."""
        assert self._live is not None
        if isinstance(self.evaluator, Prepares):
            self.evaluator.prepare([reading for reading, _ in work.readings])
        # authorised: patients of their gateway's site; the batch's signals recorded at once
        signals = [s for reading, _ in work.readings for s in self.evaluator.evaluate(reading)]
        self._count_opened(apply_signals(session, signals, self._live, now,
                                         self.on_alert_change, self.lifecycle))

    def _tick_due(self) -> bool:
        return self.clocked is not None and time.monotonic() >= self._next_tick

    @staticmethod
    def _record_streams(session: Session, work: Work, now: datetime) -> None:
        per_device: dict[tuple[str, str], list[int]] = {}
        for reading, _ in work.readings:
            per_device.setdefault((reading.gateway_id, reading.device_id), []).append(
                reading.stream_seq)
        streams.record_batch(session, per_device, now)  # one query, not one per device
        gateways = sorted({gateway for gateway, _ in per_device})
        if gateways:  # registered (authorise): never created here
            session.execute(update(Gateway).where(Gateway.id.in_(gateways))
                            .values(last_seen=now))

    @staticmethod
    def _record_pending(session: Session, work: Work, now: datetime) -> None:
        """Gateways that sent without being registered: listed for the admins."""
        for gateway, (count, claimed) in work.unregistered.items():
            row = session.get(PendingGateway, gateway)
            if row is None:
                row = PendingGateway(id=gateway, first_seen=now, messages=0)
                session.add(row)
            row.last_seen, row.messages = now, row.messages + count
            row.claimed_site = claimed or row.claimed_site

    @staticmethod
    def _record_status(session: Session, gateway: str, body: dict[str, Any]) -> None:
        """Status messages of one gateway arrive in order on one topic: the last one wins.

        Its own ``at`` is not used for ordering: a last will is composed at connect time and
        published by the broker much later. A status never moves a gateway to another site.
        """
        row = session.get(Gateway, gateway)
        if row is None:  # unregistered a moment ago
            return
        row.status, row.status_at = str(body["state"]), now_utc()
        depth = body.get("outbox")
        row.outbox_depth = depth if isinstance(depth, int) else row.outbox_depth
