"""MQTT ingest: observation batches -> InfluxDB -> rules, acknowledged only after the write.

paho runs its network loop in its own thread and hands messages over a queue; this worker takes
what has arrived (up to ``max_messages``), validates every reading, writes the good ones to
InfluxDB in one request, records stream gaps, quarantine and alerts in the relational store, and
only then sends the PUBACKs (MQTT v5, manual acknowledgement, persistent session). A crash or an
InfluxDB outage before that point leaves the messages unacknowledged: the broker redelivers
them and the idempotent writes make the redelivery harmless. Bad input is quarantined with
its reason and acknowledged: it never blocks the stream and never crashes the worker.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerting.seam import Clocked, Configurable, Evaluator, Prepares
from cloud_api import streams
from cloud_api.alerts import (
    AlertHook,
    LifecyclePolicy,
    LiveIndex,
    apply_signals,
    record_edge_alarms,
    tick_lifecycle,
)
from cloud_api.db import Gateway, Quarantine
from cloud_api.errors import ConfigError, StoreRejected, StoreUnavailable
from cloud_api.gateway_config import ConfigPublisher
from cloud_api.influx import TimeSeriesStore
from cloud_api.points import to_line
from cloud_api.profiles import ProfileSync
from cloud_api.tenancy import register_patient
from vigie.contract import (
    ALARMS_SUBSCRIPTION,
    OBSERVATIONS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    ContractError,
    EdgeAlarm,
    Reading,
    decode_alarms,
    decode_batch,
    gateway_from_topic,
    now_utc,
    plausibility_problem,
    reading_from_json,
)

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
PAYLOAD_KEEP = 4000  # characters of an offending payload kept in quarantine


@dataclass(frozen=True)
class MqttTls:
    """Secure profile (docs/security.md): the CA that signed the broker, and this worker's
    client certificate and key (``vigie pki init`` issues ``vigie-ingest-1``). In that
    profile the broker names the session after the certificate, not ``client_id``."""

    ca: str
    cert: str | None = None
    key: str | None = None


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
    extra: dict[str, Any] = field(default_factory=dict)


class LatencyWindow:
    """Reading-to-stored latency (gateway receive time to InfluxDB write acknowledged), ms,
    over the last ``size`` readings. The gateway's and the cloud's clocks are both NTP."""

    def __init__(self, size: int = 10_000) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, stored_at: datetime, readings: Sequence[tuple[Reading, str | None]]) -> None:
        self._values.extend((stored_at - r.received_at).total_seconds() * 1000
                            for r, _ in readings)

    def summary(self) -> dict[str, float | int]:
        values = sorted(self._values)
        if not values:
            return {"count": 0}
        return {"count": len(values), "p50_ms": values[len(values) // 2],
                "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))]}


@dataclass
class _Work:
    """What one batch of messages amounts to before anything is written."""

    readings: list[tuple[Reading, str | None]] = field(default_factory=list)
    quarantine: list[Quarantine] = field(default_factory=list)
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    alarms: list[tuple[str, list[EdgeAlarm]]] = field(default_factory=list)  # paged on site


def _quarantine(topic: str, gateway: str | None, reason: str, payload: Any,
                reading_id: str | None = None) -> Quarantine:
    text = payload if isinstance(payload, str) else (
        payload.decode("utf-8", "replace") if isinstance(payload, bytes)
        else json.dumps(payload, default=str))
    return Quarantine(received_at=now_utc(), topic=topic[:512], gateway_id=gateway,
                      reading_id=reading_id, reason=reason[:2000], payload=text[:PAYLOAD_KEEP])


class Ingest:
    def __init__(self, store: TimeSeriesStore, sessions: sessionmaker[Session],
                 evaluator: Evaluator, host: str, port: int, client_id: str = "vigie-ingest-1",
                 share_group: str | None = None, max_messages: int = 100,
                 tls: MqttTls | None = None, clocked: Clocked | None = None,
                 tick_s: float = 10.0, lifecycle: LifecyclePolicy | None = None,
                 on_alert_change: AlertHook | None = None,
                 publish_device_lists: bool = True) -> None:
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
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        prefix = f"$share/{share_group}/" if share_group else ""
        self._subscriptions = [(prefix + OBSERVATIONS_SUBSCRIPTION, 1),
                               (prefix + STATUS_SUBSCRIPTION, 1),
                               (prefix + ALARMS_SUBSCRIPTION, 1)]
        self.client = self._make_client(client_id)
        self._live: LiveIndex | None = None
        self._sites: dict[str, str | None] = {}  # patients registered: id -> site seen
        self._profiles: ProfileSync | None = None
        # device lists pushed to gateways (cloud_api.gateway_config): one worker only
        self._refused_mids: set[int] = set()  # PUBACKs with a failure code (on_publish)
        self.device_lists = (ConfigPublisher(sessions, self.client, self._refused_mids)
                             if publish_device_lists else None)

    def _make_client(self, client_id: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.reconnect_delay_set(1, 10)
        if self.tls is not None:
            try:
                client.tls_set(ca_certs=self.tls.ca, certfile=self.tls.cert,
                               keyfile=self.tls.key)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(f"MQTT TLS files: {exc}") from exc
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        return client

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        # a device list the broker refused (its ACL): is_published() alone says "acknowledged".
        # Device lists are all this client publishes; the PUBACK may come before the
        # publisher has noted the mid, so every refused mid is kept for it to claim.
        if rc.is_failure and self.device_lists is not None:
            self._refused_mids.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      codes: list[ReasonCode], props: Properties | None) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            self.stats.last_error = f"subscription refused: {failed}"
            log.error("broker refused ingest subscription: %s", failed)
        else:
            self.stats.subscribed = True

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode,
                    props: Properties | None) -> None:
        if rc.is_failure:
            self.stats.last_error = f"broker refused connection: {rc}"
            log.error("broker refused ingest connection: %s", rc)
            return
        self.stats.connected = True
        client.subscribe(self._subscriptions)
        log.info("ingest connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode,
                       props: Properties | None) -> None:
        self.stats.connected = self.stats.subscribed = False
        if rc.value != 0:
            log.warning("ingest disconnected: %s", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(msg)

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = 1000
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def run(self, stop: threading.Event) -> None:
        """Process messages until ``stop`` is set (messages in hand stay unacknowledged)."""
        self.start()
        try:
            while not stop.is_set():
                batch = self._take(timeout=0.2)
                if batch:
                    self.process(batch, stop)
                elif self._tick_due():
                    self._record(_Work())  # silence rules fire even when nothing arrives
                self._publish_device_lists()
        finally:
            self.stop()

    def _publish_device_lists(self) -> None:
        if self.device_lists is None:
            return
        try:
            self.device_lists.step(self.stats.connected)
        except SQLAlchemyError as exc:  # a locked database: next poll; never stop ingest
            log.warning("device lists not published this round: %s", exc)

    def _take(self, timeout: float) -> list[mqtt.MQTTMessage]:
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
    def process(self, messages: Sequence[mqtt.MQTTMessage], stop: threading.Event) -> bool:
        """Validate, write, record, then acknowledge. False when stopped before the write."""
        work = _Work()
        for msg in messages:
            self._classify(msg, work)
        if not self._write(work, stop):
            return False
        self._record(work)
        for msg in messages:
            if msg.qos > 0:
                self.client.ack(msg.mid, msg.qos)
        self.stats.messages += len(messages)
        return True

    def _classify(self, msg: mqtt.MQTTMessage, work: _Work) -> None:
        try:
            gateway = gateway_from_topic(msg.topic)
        except ContractError as exc:
            work.quarantine.append(_quarantine(msg.topic, None, str(exc), msg.payload))
            return
        if msg.topic.endswith("/alarms"):
            try:
                work.alarms.append((gateway, decode_alarms(bytes(msg.payload), gateway)))
            except ContractError as exc:
                work.quarantine.append(_quarantine(msg.topic, gateway, str(exc), msg.payload))
            return
        if msg.topic.endswith("/status"):
            self._classify_status(msg, gateway, work)
            return
        try:
            batch = decode_batch(bytes(msg.payload), gateway)
        except ContractError as exc:
            work.quarantine.append(_quarantine(msg.topic, gateway, str(exc), msg.payload))
            return
        for raw in batch.readings:
            try:
                reading = reading_from_json(raw, gateway)
            except ContractError as exc:
                rid = raw.get("id") if isinstance(raw, dict) else None
                work.quarantine.append(_quarantine(msg.topic, gateway, str(exc), raw,
                                                   rid if isinstance(rid, str) else None))
                continue
            problem = plausibility_problem(reading.kind, reading.value, reading.unit)
            if problem:
                work.quarantine.append(_quarantine(msg.topic, gateway, problem, raw, reading.id))
                continue
            work.readings.append((reading, batch.site))

    def _classify_status(self, msg: mqtt.MQTTMessage, gateway: str, work: _Work) -> None:
        if not msg.payload:
            return  # a cleared retained status
        try:
            body = json.loads(msg.payload)
            if not isinstance(body, dict) or body.get("state") not in ("online", "offline"):
                raise ContractError("status must be {'state': 'online'|'offline', ...}")
            work.statuses.append((gateway, body))
        except (ValueError, ContractError) as exc:
            work.quarantine.append(_quarantine(msg.topic, gateway, f"bad status: {exc}",
                                               msg.payload))

    def _write(self, work: _Work, stop: threading.Event) -> bool:
        delay = 0.2
        while work.readings:
            ingested = time.time_ns()
            try:
                self.store.write([to_line(r, site, ingested) for r, site in work.readings])
                self.latency.add(now_utc(), work.readings)
                return True
            except StoreRejected as exc:
                log.error("InfluxDB rejected a write, isolating bad points: %s", exc)
                self._isolate(work, stop)
            except StoreUnavailable as exc:
                self.stats.write_retries += 1
                self.stats.last_error = str(exc)
                log.warning("InfluxDB unavailable (%s); retrying in %.1f s", exc, delay)
                if not self._wait_publishing(stop, delay):
                    return False
                delay = min(delay * 2, 5.0)
        return True

    def _wait_publishing(self, stop: threading.Event, delay: float) -> bool:
        """Wait ``delay`` before the next write attempt, publishing device lists meanwhile:
        a nurse's assignment does not wait for InfluxDB. False when stopped."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            self._publish_device_lists()
            if stop.wait(min(left, 0.5)):
                return False
        return True

    def _isolate(self, work: _Work, stop: threading.Event) -> None:
        """Write reading by reading; quarantine the ones InfluxDB refuses."""
        kept: list[tuple[Reading, str | None]] = []
        for reading, site in work.readings:
            try:
                self.store.write([to_line(reading, site)])
                kept.append((reading, site))
            except StoreRejected as exc:
                work.quarantine.append(_quarantine("", reading.gateway_id, f"store: {exc}",
                                                   reading.to_json(), reading.id))
            except StoreUnavailable:
                kept.append((reading, site))  # the outer loop retries the lot
        work.readings = kept

    def _record(self, work: _Work) -> None:
        now = now_utc()
        try:
            self._record_in(work, now)
        except BaseException:
            self._live = None  # the cache may hold what the rolled-back transaction did
            self._sites.clear()
            raise
        self.stats.readings_stored += len(work.readings)
        self.stats.quarantined += len(work.quarantine)

    def _record_in(self, work: _Work, now: datetime) -> None:
        with self.sessions.begin() as session:
            if self._live is None:
                self._live = LiveIndex(session)
            for q in work.quarantine:
                log.warning("quarantined from %s: %s", q.gateway_id or q.topic, q.reason)
                session.add(q)
            self._record_streams(session, work, now)
            for gateway, body in work.statuses:
                self._record_status(session, gateway, body)
                if self.clocked is not None:
                    self.clocked.heartbeat(gateway, now)
            for gateway, alarms in work.alarms:  # before the rules: no second page
                record_edge_alarms(session, gateway, alarms, self._live, now)
            self._apply_rules(session, work, now)

    def _apply_rules(self, session: Session, work: _Work, now: datetime) -> None:
        """Tick the clocked rules when due, then evaluate the stored readings, in the
        caller's transaction (``cloud_api.sharding`` moves this to the patient's shard)."""
        assert self._live is not None
        if self.clocked is not None and self._tick_due():
            self._next_tick = time.monotonic() + self._tick_s
            if isinstance(self.evaluator, Configurable):
                if self._profiles is None or self._profiles.engine is not self.evaluator:
                    self._profiles = ProfileSync(self.evaluator)  # a new engine: all of them
                self._profiles(session)  # care-team edits since the last tick
            self.stats.alerts_opened += len(
                apply_signals(session, self.clocked.tick(now), self._live, now,
                              self.on_alert_change, self.lifecycle))
            tick_lifecycle(session, now, self.lifecycle, self.on_alert_change)
        if isinstance(self.evaluator, Prepares):
            self.evaluator.prepare([reading for reading, _ in work.readings])
        for reading, site in work.readings:
            pid = reading.patient_id
            if pid is not None and (pid not in self._sites or self._sites[pid] != site):
                self._sites[pid] = site  # known patients cost no query (dropped on failure)
                register_patient(session, pid, site)
            opened = apply_signals(session, self.evaluator.evaluate(reading), self._live, now,
                                   self.on_alert_change, self.lifecycle)
            self.stats.alerts_opened += len(opened)

    def _tick_due(self) -> bool:
        return self.clocked is not None and time.monotonic() >= self._next_tick

    @staticmethod
    def _record_streams(session: Session, work: _Work, now: datetime) -> None:
        per_device: dict[tuple[str, str], list[int]] = {}
        sites: dict[str, str | None] = {}
        for reading, site in work.readings:
            per_device.setdefault((reading.gateway_id, reading.device_id), []).append(
                reading.stream_seq)
            sites[reading.gateway_id] = site
        for (gateway, device), seqs in per_device.items():
            streams.record(session, gateway, device, seqs, now)
        for gateway, site in sites.items():
            row = session.get(Gateway, gateway) or Gateway(id=gateway)
            row.last_seen, row.site = now, site or row.site
            session.add(row)

    @staticmethod
    def _record_status(session: Session, gateway: str, body: dict[str, Any]) -> None:
        """Status messages of one gateway arrive in order on one topic: the last one wins.

        Its own ``at`` is not used for ordering: a last will is composed at connect time and
        published by the broker much later.
        """
        row = session.get(Gateway, gateway) or Gateway(id=gateway)
        row.status, row.status_at = str(body["state"]), now_utc()
        depth = body.get("outbox")
        row.outbox_depth = depth if isinstance(depth, int) else row.outbox_depth
        site = body.get("site")
        if isinstance(site, str):
            row.site = site
        session.add(row)
