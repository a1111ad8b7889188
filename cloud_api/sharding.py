"""Scale-out: intake workers on a shared subscription, shard workers owning patients.

``vigie cloud run --role all`` (the default) is one ingest worker doing everything. Past one
process, the work splits in two tiers (docs/scaling.md):

- **intake** (``--role intake``, any number, MQTT 5 shared subscription
  ``$share/<group>/vigie/v1/gateways/+/observations``): validates batches, quarantines bad
  input, records stream sequence gaps and gateway status, and routes each valid reading to
  ``vigie/v1/shards/<count>/<shard>``, the shard being a stable hash of the patient id. It
  acknowledges the gateway's message only once every routed message is PUBACKed (QoS 1).
- **shard** (``--role shard --owns 0-7``): one persistent session subscribed to the shards it
  owns; for each batch it writes InfluxDB, then evaluates the rules and records alerts, then
  acknowledges: exactly what ``--role all`` does, for its patients only.

Why the shard worker, not the intake, writes InfluxDB: the rule engine warms a patient up
from InfluxDB the first time it sees them and treats what it loads as already evaluated. If
the shared-subscription tier stored readings, a reading stored by one intake worker but not
yet routed could be loaded by that warm-up and its alert never raised. With storage and
rules in the shard owner, "stored" implies "evaluated or still queued in the owner's own
session, in order", as in the single process.

Every shard must be owned by exactly one running shard worker: its engine windows and its
``LiveIndex`` are then complete for its patients. Two workers owning one shard would both
raise that shard's alerts; the shard worker's client id names its shard set, so a second
worker started with the same set takes the session over (the broker disconnects the first,
which then stops).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import Engine
from alerting.seam import AlertSignal, Prepares
from alerting.settings import WarmUpError
from cloud_api.alerts import LiveIndex, record_edge_alarms
from cloud_api.db import make_engine, make_sessions
from cloud_api.errors import ConfigError
from cloud_api.influx import TimeSeriesStore
from cloud_api.ingest import Ingest
from cloud_api.stages.acknowledge import stored_messages
from cloud_api.stages.refusal import refusal
from cloud_api.stages.work import Sited, Work
from vigie.contract import (
    SCHEMA_VERSION,
    STATUS_SUBSCRIPTION,
    TOPIC_PREFIX,
    ContractError,
    EdgeAlarm,
    Reading,
    check_id,
    loads_bounded,
    reading_from_json,
)
from vigie.mqtt import Delivery, Message, MqttError, PublishRefused, Tls

log = logging.getLogger(__name__)

ROLES: Final = ("all", "intake", "shard")
DEFAULT_SHARDS: Final = 16
MAX_SHARDS: Final = 1024
SHARD_PREFIX: Final = f"{TOPIC_PREFIX}/shards"
PUBACK_TIMEOUT_S: Final = 10.0
ROUTED_MAX_BYTES: Final = 16 << 20  # the broker's max_packet_size (vigie.services)
DB_ATTEMPTS: Final = 5  # relational write retries (lock timeouts, PostgreSQL insert races)
_TAKEN_OVER: Final = 142  # MQTT 5 reason code 0x8E "Session taken over" (MQTT 5, 3.14.2.1)


# -- pure part: shard of a reading, topics, owned sets, payloads ------------------------

def shard_of(key: str, count: int) -> int:
    """Stable shard of a routing key: the same on every worker, every run, every version of
    Python (``hash()`` is salted per process; blake2b is not)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def routing_key(reading: Reading) -> str:
    """The patient owns the state the rules keep; an unattributed reading drives no rule and
    is routed by its device (NUL cannot occur in an id, so the keys never collide)."""
    if reading.patient_id is not None:
        return reading.patient_id
    return f"\0{reading.gateway_id}/{reading.device_id}"


def shard_topic(count: int, shard: int) -> str:
    """``vigie/v1/shards/<count>/<shard>``: the count is in the topic so that readings routed
    under one shard count are never consumed by a worker that believes in another."""
    check_count(count)
    if not 0 <= shard < count:
        raise ConfigError(f"shard {shard} outside 0-{count - 1}")
    return f"{SHARD_PREFIX}/{count}/{shard}"


def check_count(count: int) -> int:
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"--shards must be 1-{MAX_SHARDS}, got {count}")
    return count


def parse_owns(text: str, count: int) -> tuple[int, ...]:
    """``"0-7"``, ``"0-3,8-11"``, ``"5"`` -> sorted shard numbers, each below ``count``."""
    owned: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError as exc:
            raise ConfigError(f"--owns: expected ranges like 0-7,12, got {text!r}") from exc
        if not 0 <= lo <= hi < count:
            raise ConfigError(f"--owns: {part!r} is not within 0-{count - 1}")
        owned.update(range(lo, hi + 1))
    if not owned:
        raise ConfigError("--owns: no shard given")
    return tuple(sorted(owned))


def owns_text(owned: Iterable[int]) -> str:
    """Compact form of a shard set (``0-7,12``), used in the shard worker's client id."""
    runs: list[list[int]] = []
    for s in sorted(owned):
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


GatewayAlarm = tuple[str, EdgeAlarm]  # an alarm a gateway paged on site, and that gateway


@dataclass
class Routed:
    """What one shard gets from one intake batch."""

    readings: list[Sited] = field(default_factory=list)
    alarms: list[GatewayAlarm] = field(default_factory=list)


def route(readings: Iterable[Sited], alarms: Iterable[tuple[str, Iterable[EdgeAlarm]]],
          count: int) -> dict[int, Routed]:
    """Readings and on-site alarms by the shard of their patient: an alarm touches the
    patient's live alert, which only the shard owner may do."""
    out: dict[int, Routed] = {}
    for reading, site in readings:
        shard = shard_of(routing_key(reading), count)
        out.setdefault(shard, Routed()).readings.append((reading, site))
    for gateway, some in alarms:
        for alarm in some:
            shard = shard_of(alarm.patient_id, count)
            out.setdefault(shard, Routed()).alarms.append((gateway, alarm))
    return out


def encode_routed(routed: Routed) -> bytes:
    """One shard's part as one message: the contract's reading and alarm objects plus the
    gateway and (readings) the care site the batch came with."""
    rows = [{**r.to_json(), "gateway": r.gateway_id, "site": site} for r, site in routed.readings]
    alarms = [{**a.to_json(), "gateway": g} for g, a in routed.alarms]
    return json.dumps({"v": SCHEMA_VERSION, "readings": rows, "alarms": alarms},
                      separators=(",", ":")).encode()


def decode_routed(payload: bytes) -> Routed:
    """Inverse of ``encode_routed``; raises ContractError. Only our own workers may publish
    here (the ACL of the secure profile), but the plain profile lets any client do it: the
    payload is bounded like a gateway's, within the broker's packet size."""
    body = loads_bounded(payload, max_bytes=ROUTED_MAX_BYTES)
    if not isinstance(body, dict) or body.get("v") != SCHEMA_VERSION:
        raise ContractError("routed payload of an unknown version")
    rows = body.get("readings")
    if not isinstance(rows, list):
        raise ContractError("routed payload without readings")
    out = Routed()
    for row in rows:
        site = row.get("site") if isinstance(row, dict) else None
        out.readings.append((reading_from_json(row, _gateway(row)),
                             site if isinstance(site, str) else None))
    for row in body.get("alarms", []):
        out.alarms.append((_gateway(row), EdgeAlarm.from_json(row)))
    return out


def _gateway(row: Any) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("gateway"), str):
        raise ContractError("routed item without its gateway")
    return check_id(row["gateway"], "gateway")


# -- relational store shared by several processes ----------------------------------------

def serialize_sqlite_writers(engine: SqlEngine) -> SqlEngine:
    """Make every transaction of ``engine`` take SQLite's write lock first (BEGIN IMMEDIATE).

    pysqlite otherwise runs the reads of a transaction outside it: two intake workers could
    both read a device's ``high_seq`` and report a false gap. The documented SQLAlchemy
    recipe ("Serializable isolation / Savepoints / Transactional DDL", pysqlite dialect).
    On PostgreSQL nothing changes here: see docs/scaling.md.
    """
    if engine.dialect.name != "sqlite":
        return engine

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners would lack the first one
    return engine


class _NoRules:
    """The intake's evaluator: rules run in the shard workers."""

    def evaluate(self, reading: Reading) -> list[AlertSignal]:
        return []


class _Replay:
    """Signals already computed, handed out once per reading id."""

    def __init__(self, signals: dict[str, list[AlertSignal]]) -> None:
        self._signals = signals

    def evaluate(self, reading: Reading) -> list[AlertSignal]:
        return self._signals.pop(reading.id, [])


class _RetryRecord(Ingest):
    """Relational writes retried: with several processes a lock can time out."""

    def _record(self, work: Work) -> None:
        for attempt in range(1, DB_ATTEMPTS + 1):
            try:
                super()._record(work)
                return
            except (OperationalError, IntegrityError, WarmUpError) as exc:
                if attempt == DB_ATTEMPTS:
                    raise
                log.warning("recording failed (%s); retry %d", exc, attempt)
                self._after_failed_record()
                time.sleep(0.2 * attempt)

    def _after_failed_record(self) -> None:
        """Forget in-memory state the rolled-back transaction may have touched."""


# -- intake: shared subscription, validate, route ------------------------------------------

class IntakeWorker(_RetryRecord):
    """Validate and route; the gateway's message is acknowledged once routed and recorded."""

    def __init__(self, store: TimeSeriesStore, sessions: sessionmaker[Session], host: str,
                 port: int, *, shards: int = DEFAULT_SHARDS, **kw: Any) -> None:
        super().__init__(store, sessions, _NoRules(), host, port, clocked=None,
                         publish_device_lists=False, **kw)  # shard 0's owner does
        self.shards = check_count(shards)
        self.stats.extra.update(role="intake", shards=self.shards)

    def _apply_rules(self, session: Session, work: Work, now: datetime) -> None:
        """Nothing: patients are registered and evaluated by the shard that owns them."""

    def _confirm(self, work: Work) -> None:
        """Only what it quarantined: a reading it routed is named to its gateway by the
        shard worker that stores it."""
        self.confirmations.send(stored_messages((), work.quarantine))

    def _write(self, work: Work, stop: threading.Event) -> bool:
        """Publish the readings to their shards (QoS 1) and wait for every PUBACK.

        A resend after a timeout may duplicate a routed message: the shard worker's writes
        are idempotent and its engine ignores a reading id already seen.
        """
        pending = {shard_topic(self.shards, s): encode_routed(part)
                   for s, part in route(work.readings, work.alarms, self.shards).items()}
        work.alarms = []  # recorded by the shard that owns the patient, not here
        delay = 0.2
        while pending:
            deliveries: dict[str, Delivery] = {}
            for topic, payload in pending.items():
                try:
                    deliveries[topic] = self.client.publish(topic, payload, qos=1)
                except MqttError as exc:  # not connected, paho's queue full: resend
                    log.warning("routed message to %s not published: %s", topic, exc)
            deadline = time.monotonic() + PUBACK_TIMEOUT_S
            for topic, delivery in deliveries.items():
                if self._acked(delivery, deadline):
                    pending.pop(topic)
            if pending:
                self.stats.last_error = f"{len(pending)} routed messages not acknowledged"
                log.warning("%d routed messages unacknowledged; resending in %.1f s",
                            len(pending), delay)
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)
        return True

    @staticmethod
    def _acked(delivery: Delivery, deadline: float) -> bool:
        """True once the broker took the routed message. A PUBACK with a failure code (the
        service's ACL) is not a delivery: the gateway's message stays unacknowledged and
        is sent again, loudly."""
        try:
            delivery.wait(max(0.0, deadline - time.monotonic()))
        except PublishRefused as exc:
            log.error("the broker refused routed message %s (check the service's ACL on "
                      "%s/#): the gateway's message stays unacknowledged (%s)", delivery.mid,
                      SHARD_PREFIX, exc.reason)
            return False
        except MqttError as exc:  # no PUBACK in time, connection lost: resend
            log.debug("routed message %s not acknowledged: %s", delivery.mid, exc)
            return False
        return True


# -- shard: owned shards, InfluxDB, rules, alerts ----------------------------------------

class ShardWorker(_RetryRecord):
    """The single-process ingest, fed by the shard topics it owns instead of the gateways."""

    def __init__(self, store: TimeSeriesStore, sessions: sessionmaker[Session], host: str,
                 port: int, *, engine_factory: Callable[[], Engine], owned: Sequence[int],
                 shards: int = DEFAULT_SHARDS, **kw: Any) -> None:
        self._engine_factory = engine_factory
        engine = engine_factory()
        self.shards = check_count(shards)
        self.owned = tuple(owned)
        self._shard_topics = frozenset(shard_topic(self.shards, s) for s in self.owned)
        # the owner of shard 0 (exactly one process) pushes device lists to gateways;
        # status messages too: heartbeats feed the silence rules of every worker
        super().__init__(store, sessions, engine, host, port, clocked=engine,
                         publish_device_lists=0 in owned,
                         subscriptions=[*sorted(self._shard_topics), STATUS_SUBSCRIPTION], **kw)
        self.stats.extra.update(role="shard", shards=self.shards, owns=owns_text(self.owned))
        self._stop: threading.Event | None = None

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        super().run(stop)

    def _classify(self, msg: Message, work: Work, now: datetime) -> None:
        if msg.topic not in self._shard_topics:  # subscribed to: its own shards, statuses
            super()._classify(msg, work, now)  # a gateway status
            return
        try:
            routed = decode_routed(bytes(msg.payload))
        except ContractError as exc:
            # a version skew between workers: kept in quarantine, visible, never dropped
            log.error("quarantining a routed message: %s", exc)
            self.stats.last_error = str(exc)
            work.quarantine.append(refusal(msg.topic, None, "routed", str(exc), msg.payload))
            return
        work.readings.extend(routed.readings)
        alarms: dict[str, list[EdgeAlarm]] = {}
        for gateway, alarm in routed.alarms:
            alarms.setdefault(gateway, []).append(alarm)
        work.alarms.extend(alarms.items())

    def _authorise(self, work: Work) -> None:
        """Nothing: the intake authorised the readings it routed (and stored them under their
        gateway's registered site); statuses here only feed the silence rules."""

    def _record_in(self, work: Work, now: datetime) -> None:
        """Rules only: the intake already recorded quarantine, gaps and gateway status."""
        # Measurement order within a batch: a warm-up triggered by a patient's later reading
        # would load (and mark as seen) an earlier one stored in this very batch.
        work.readings.sort(key=lambda rs: rs[0].measured_at)
        # Evaluate before the transaction: a patient's warm-up queries InfluxDB, and on SQLite
        # the transaction holds the write lock every other worker waits for.
        signals: dict[str, list[AlertSignal]] = {}
        if isinstance(self.evaluator, Prepares):  # the batch's new patients: one query each 100
            self.evaluator.prepare([reading for reading, _ in work.readings])
        for reading, _ in work.readings:
            if reading.id not in signals:
                signals[reading.id] = self.evaluator.evaluate(reading)
        engine, self.evaluator = self.evaluator, _Replay(signals)
        try:
            self._record_rules(work, now)
        finally:
            self.evaluator = engine

    def _record_rules(self, work: Work, now: datetime) -> None:
        with self.sessions.begin() as session:
            if self._live is None:
                self._live = LiveIndex(session)
            for q in work.quarantine:  # points InfluxDB refused (see Ingest._write)
                log.warning("quarantined from %s: %s", q.gateway_id or q.topic, q.reason)
                session.add(q)
            if self.clocked is not None:
                for gateway, _ in work.statuses:
                    self.clocked.heartbeat(gateway, now)
            for gateway, alarms in work.alarms:  # before the rules, as Ingest does
                record_edge_alarms(session, gateway, alarms, self._live, now)
            self._apply_rules(session, work, now)

    def _after_failed_record(self) -> None:
        # the engine already counted these readings as seen: start again from InfluxDB
        engine = self._engine_factory()
        self.evaluator = engine
        self.clocked = engine

    def _on_disconnect(self, reason: int) -> None:
        super()._on_disconnect(reason)
        if reason == _TAKEN_OVER:
            log.error("another shard worker took over shards %s: stopping",
                      owns_text(self.owned))
            self.stats.last_error = "session taken over by another shard worker"
            if self._stop is not None:
                self._stop.set()  # paho would reconnect and take the session back


def shard_client_id(owned: Sequence[int], shards: int) -> str:
    """A shard worker's session is named after what it owns: two workers started for the
    same shards cannot both hold it."""
    return f"vigie-shard-{owns_text(owned)}-of-{shards}"


DEFAULT_GROUP: Final = "vigie-intake"
_DEFAULT_CLIENT_ID: Final = "vigie-ingest-1"  # CloudSettings' default: not a shard session


def scale_out_worker(role: str, store: TimeSeriesStore, db_url: str, host: str, port: int, *,
                     engine_factory: Callable[[], Engine], shards: int = DEFAULT_SHARDS,
                     owns: str | None = None, client_id: str = _DEFAULT_CLIENT_ID,
                     share_group: str | None = None, tls: Tls | None = None,
                     **hooks: Any) -> Ingest:
    """The worker of ``vigie cloud run --role intake|shard``; ``hooks`` are the alert
    lifecycle options of ``Ingest`` (the shard worker raises the alerts).

    Its relational sessions are its own, serialized on SQLite (the API keeps plain ones).
    """
    sessions = make_sessions(serialize_sqlite_writers(make_engine(db_url)))
    check_count(shards)
    if role == "intake":
        if owns is not None:
            raise ConfigError("--owns is for --role shard")
        return IntakeWorker(store, sessions, host, port, shards=shards, client_id=client_id,
                            share_group=share_group or DEFAULT_GROUP, tls=tls)
    if role == "shard":
        if share_group is not None:
            raise ConfigError("--share-group is for --role intake: a shard has one owner")
        owned = parse_owns(owns or f"0-{shards - 1}", shards)
        if client_id == _DEFAULT_CLIENT_ID:
            client_id = shard_client_id(owned, shards)
        return ShardWorker(store, sessions, host, port, engine_factory=engine_factory,
                           owned=owned, shards=shards, client_id=client_id, tls=tls,
                           **hooks)
    raise ConfigError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
