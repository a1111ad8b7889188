"""MQTT publisher: outbox -> broker, QoS 1; a reading leaves the outbox when the cloud says so.

One thread owns the MQTT client (``vigie.mqtt``, MQTT v5): it connects with a persistent
session and a retained last-will ("offline"), runs the network loop, publishes batches from
the outbox while fewer than ``max_inflight`` are unacknowledged, and marks a batch's rows sent
when its PUBACK arrives (a ``Delivery`` each; a refused one, or one whose connection was lost
first, is sent again). Callbacks run inside ``client.loop()`` on this same thread, so there is
no lock between paho and the pump. Reconnects back off exponentially with full jitter, so a
fleet of gateways does not hammer a broker that just came back.

End-to-end acknowledgement (docs/operator.md): a PUBACK only means the broker holds the batch,
in memory until its next autosave. The publisher subscribes to the gateway's
``vigie.contract.stored_topic`` and deletes a reading when the cloud names it there (stored in
InfluxDB or quarantined). A reading sent and never named is sent again per
``gateway.outbox.ResendPolicy``: seconds after a reconnect (a broker that restarted may have
lost it), else after a long timeout; each copy doubles the next wait, so a cloud down for
hours does not fill the broker with copies. The cloud's writes are idempotent: a copy that
was not lost after all costs a rewrite, not a duplicate.

Feeds (``add_feed``) publish other durable messages on the same connection, before any
batch (the edge alarms a gateway paged on site must reach the cloud before the readings
that raised them); a feed forgets a message when its PUBACK arrives.

Subscriptions (``subscribe``) go the other way: after each connection the publisher
subscribes (QoS 1) to the topics given, such as the device list the cloud publishes for this
gateway (``gateway.assignments``), and calls the handler with each message's payload on this
thread; the PUBACK goes out once the handler returned. A handler that raises is logged.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import OutboxError
from gateway.outbox import Outbox, Pending, ResendPolicy
from vigie.backoff import Backoff
from vigie.contract import (
    Batch,
    ContractError,
    decode_stored,
    iso,
    now_utc,
    observations_topic,
    status_topic,
    stored_topic,
)
from vigie.mqtt import Delivery, Message, MqttClient, MqttError, NotConnected, Options, Tls, Will

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
SWEEP_SPACING_S = 5.0  # a resend sweep that met readings in flight: the next one waits this


@dataclass
class PublisherSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None
    keepalive: int = 30
    batch_size: int = 200
    max_inflight: int = 16
    puback_timeout: float = 60.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    heartbeat_s: float = 60.0
    site: str | None = None
    # Secure profile (docs/security.md): TLS with the broker verified against ``tls_ca`` and
    # this gateway's client certificate. None: plain MQTT, as on the loopback test broker.
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # Readings the broker acknowledged and the cloud has not confirmed: when to send again.
    resend: ResendPolicy = field(default_factory=ResendPolicy)


class Feed(Protocol):
    """Durable messages to publish besides the outbox: ``pending`` lists (key, topic,
    payload); ``sent(key)`` is called once the broker acknowledged that message."""

    def pending(self) -> list[tuple[str, str, bytes]]: ...

    def sent(self, key: str) -> None: ...


@dataclass
class PublisherStats:
    published_batches: int = 0
    acked_readings: int = 0  # acknowledged by the broker (marked sent)
    confirmed_readings: int = 0  # confirmed by the cloud (deleted from the outbox)
    resent_readings: int = 0  # sent again, not confirmed in time (ResendPolicy)
    refused_batches: int = 0
    connects: int = 0
    connected: bool = False
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Publisher:
    def __init__(self, gateway_id: str, outbox: Outbox, settings: PublisherSettings) -> None:
        self.gateway_id = gateway_id
        self.outbox = outbox
        self.s = settings
        self.stats = PublisherStats()
        self._topic = observations_topic(gateway_id)
        self._status_topic = status_topic(gateway_id)
        self._inflight: dict[int, tuple[list[int], float]] = {}  # by message id
        self._deliveries: dict[int, Delivery] = {}  # batches and feed messages in flight
        self._high_water = 0  # highest outbox row handed to paho
        self._retry: list[int] = []  # rows to publish again (refused or never acknowledged)
        self._retry_after = 0.0
        # answers to publishes, by message id: None delivered, else why not (on this thread)
        self._acks: list[tuple[int, MqttError | None]] = []
        self._connected = False
        self._last_heartbeat = 0.0
        self._backoff = Backoff(settings.backoff_min, settings.backoff_max)
        self._feeds: list[Feed] = []
        self._feed_inflight: dict[int, tuple[Feed, str, float]] = {}
        self._feed_retry_after = 0.0
        # wall clock of send times (kept in the outbox across restarts): time.time()
        self.clock: Callable[[], float] = time.time
        self._connected_at = 0.0  # clock() when the current connection began
        self._sweep_after: int | None = None  # row reached by the resend sweep under way
        self._next_sweep = 0.0  # clock() before which no resend sweep starts
        self._swept = 0  # readings sent again by the sweep under way
        self.offline_since: float | None = time.monotonic()  # None while connected
        self.failure: Exception | None = None  # why run() ended early, if it did
        self.client = self._make_client()
        self.subscribe(stored_topic(gateway_id), self._on_stored)

    def add_feed(self, feed: Feed) -> None:
        self._feeds.append(feed)

    def subscribe(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Subscribe to ``topic`` at every connection; ``handler`` gets each payload on the
        publisher's thread (one that raises is logged). Call before ``run``."""
        def on_message(msg: Message) -> None:
            handler(bytes(msg.payload))

        self.client.subscribe(topic, on_message)

    def offline_for(self) -> float | None:
        """Seconds since the link to the broker was lost (or since start, before the first
        connection); None while connected. Safe to call from any thread."""
        since = self.offline_since
        return None if since is None else time.monotonic() - since

    # -- MQTT client -------------------------------------------------------------------
    def _make_client(self) -> MqttClient:
        s = self.s
        tls = None if s.tls_ca is None else Tls(s.tls_ca, s.tls_cert, s.tls_key)
        client_id = s.client_id or f"vigie-gw-{self.gateway_id}"
        client = MqttClient(
            Options(host=s.host, port=s.port, client_id=client_id,
                    keepalive=s.keepalive, tls=tls, clean_start=False,
                    session_expiry_s=SESSION_EXPIRY_S, max_inflight=s.max_inflight,
                    max_queued=0, connect_timeout=5.0),
            will=Will(self._status_topic, self._status_payload("offline"), qos=1, retain=True))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _status_payload(self, state: str) -> bytes:
        body = {"state": state, "at": iso(now_utc()), "outbox": self.outbox.depth,
                "site": self.s.site}
        return json.dumps(body).encode()

    def _on_connect(self, session_present: bool) -> None:
        self._connected = self.stats.connected = True
        self.offline_since = None
        self.stats.connects += 1
        # what was sent over an earlier connection may be lost (a broker that restarted):
        # look again now, with the reconnect's shorter wait (ResendPolicy)
        self._connected_at, self._next_sweep = self.clock(), 0.0
        self._backoff.reset()
        log.info("connected to broker %s:%d (session present: %s)", self.s.host, self.s.port,
                 session_present)
        self._heartbeat(force=True)

    def _on_disconnect(self, reason: int) -> None:
        self._offline()

    def _offline(self) -> None:
        self._connected = self.stats.connected = False
        if self.offline_since is None:
            self.offline_since = time.monotonic()

    def _track(self, delivery: Delivery) -> int:
        """Note the answer to ``delivery`` in ``_acks`` when it comes; its message id."""
        assert delivery.mid is not None
        self._deliveries[delivery.mid] = delivery
        delivery.add_done_callback(self._answered)
        return delivery.mid

    def _answered(self, delivery: Delivery) -> None:
        assert delivery.mid is not None
        if self._deliveries.pop(delivery.mid, None) is delivery:
            self._acks.append((delivery.mid, delivery.error))
            if delivery.error is not None and not isinstance(delivery.error, NotConnected):
                log.error("broker refused a message (mid %d): %s", delivery.mid,
                          delivery.error)

    def _give_up(self, mid: int) -> None:
        delivery = self._deliveries.pop(mid, None)
        if delivery is not None:
            delivery.cancel()

    # -- loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, drain_timeout: float = 0.0) -> None:
        """Publish until ``stop`` is set; then drain for up to ``drain_timeout`` seconds.

        An unexpected error ends the thread with ``failure`` set and logged: the daemon
        sees the thread gone and exits non-zero, rather than taking readings that nothing
        publishes any more.
        """
        try:
            self._run(stop, drain_timeout)
        except Exception as exc:
            self.failure = exc
            log.exception("MQTT publisher stopped")

    def _run(self, stop: threading.Event, drain_timeout: float) -> None:
        drain_deadline: float | None = None
        while True:
            if stop.is_set() and drain_deadline is None:
                drain_deadline = time.monotonic() + drain_timeout
            if drain_deadline is not None and (
                    time.monotonic() >= drain_deadline or self.drained()):
                break
            if not self._connected and not self._connect_once(stop, drain_deadline):
                continue
            self._step()
        self._close()

    def drained(self) -> bool:
        return self.outbox.depth == 0 and not self._inflight

    def _connect_once(self, stop: threading.Event, drain_deadline: float | None) -> bool:
        try:
            self.client.connect()
            deadline = time.monotonic() + 10
            while not self._connected and time.monotonic() < deadline:
                if not self.client.loop(timeout=0.05):
                    break
            if self._connected:
                return True
            if self.client.last_error is not None:  # a CONNACK refusing us, say
                self.stats.last_error = self.client.last_error
        except OSError as exc:
            self.stats.last_error = f"cannot reach broker: {exc}"
            log.warning("cannot reach broker %s:%d: %s", self.s.host, self.s.port, exc)
        delay = self._backoff.next()
        if drain_deadline is not None:
            delay = min(delay, max(0.0, drain_deadline - time.monotonic()))
        if drain_deadline is None:
            stop.wait(delay)
        else:
            time.sleep(delay)
        return False

    def _step(self) -> None:
        if not self.client.loop(timeout=0.02):
            self._offline()
            self._handle_acks()  # what was in flight failed with the connection
            return
        self._handle_acks()
        self._expire_inflight()
        self._pump_feeds()
        self._pump()
        self._heartbeat()

    def _handle_acks(self) -> None:
        acks, self._acks = self._acks, []
        for mid, error in acks:
            if mid in self._feed_inflight:
                self._feed_acked(mid, error)
                continue
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # released earlier on timeout; rows will be (or were) resent
            rows, _ = entry
            if error is None:
                self._sent(rows)
            elif isinstance(error, NotConnected):  # sent again once connected
                self._retry.extend(rows)
            else:
                self.stats.refused_batches += 1
                self._retry.extend(rows)
                self._retry_after = time.monotonic() + 5.0

    def _sent(self, rows: list[int]) -> None:
        """The broker holds these rows: they wait in the outbox for the cloud's word."""
        now = self.clock()
        try:
            self.stats.acked_readings += self.outbox.mark_sent(rows, now)
        except OutboxError as exc:
            # Not marked (a full disk): sent again after the confirmation timeout unless the
            # cloud confirms them first (``get`` then no longer finds them).
            log.error("%s; %d readings will be sent again unless confirmed", exc, len(rows))
            self._retry.extend(rows)
            self._retry_after = time.monotonic() + self.s.resend.timeout_s
            return
        # rows just marked fall due no sooner than one timeout from now
        self._next_sweep = min(self._next_sweep, now + self.s.resend.wait(1, False))

    def _on_stored(self, payload: bytes) -> None:
        """The cloud names readings of this gateway it now holds: delete them. Never raises;
        a malformed message is logged and ignored, as are ids the outbox does not hold."""
        try:
            ids = decode_stored(payload, self.gateway_id)
        except ContractError as exc:
            log.warning("ignoring a malformed stored message: %s", exc)
            return
        try:
            self.stats.confirmed_readings += self.outbox.confirm(ids)
        except OutboxError as exc:  # still queued: sent again, confirmed again
            log.error("%s; %d confirmed readings stay queued for now", exc, len(ids))

    def _expire_inflight(self) -> None:
        limit = time.monotonic() - self.s.puback_timeout
        for mid in [m for m, (_, t) in self._inflight.items() if t < limit]:
            rows, _ = self._inflight.pop(mid)
            self._give_up(mid)
            log.warning("no PUBACK for batch mid %d in %.0f s: will resend", mid,
                        self.s.puback_timeout)
            self._retry.extend(rows)

    def _pump_feeds(self) -> None:
        if not self._feeds or time.monotonic() < self._feed_retry_after:
            return
        limit = time.monotonic() - self.s.puback_timeout
        for mid in [m for m, (_, _, t) in self._feed_inflight.items() if t < limit]:
            del self._feed_inflight[mid]  # no PUBACK in time: publish again below
            self._give_up(mid)
        self._feed_retry_after = time.monotonic() + 0.2  # poll the feeds 5 times a second
        busy = {(id(f), k) for f, k, _ in self._feed_inflight.values()}
        for feed in self._feeds:
            for key, topic, payload in feed.pending():
                if (id(feed), key) not in busy and self._connected:
                    try:
                        mid = self._track(self.client.publish(topic, payload, qos=1))
                    except MqttError as exc:  # polled again in a moment
                        log.warning("%s message not published: %s", type(feed).__name__, exc)
                        return
                    self._feed_inflight[mid] = (feed, key, time.monotonic())

    def _feed_acked(self, mid: int, error: MqttError | None) -> None:
        feed, key, _ = self._feed_inflight.pop(mid)
        if error is None:
            feed.sent(key)
        elif isinstance(error, NotConnected):
            return  # published again once connected
        else:
            log.error("broker refused a %s message (mid %d)", type(feed).__name__, mid)
            self._feed_retry_after = time.monotonic() + 5.0

    def _next_batch(self) -> list[Pending]:
        if self._retry and time.monotonic() >= self._retry_after:
            rows, self._retry = self._retry[: self.s.batch_size], self._retry[self.s.batch_size:]
            return self.outbox.get(rows)
        again = self._resend_batch()  # older readings first: the rules see them in order
        if again:
            return again
        batch, self._high_water = self.outbox.unsent(self.s.batch_size, self._high_water)
        return batch

    def _resend_batch(self) -> list[Pending]:
        """The next readings sent, unconfirmed and due again (``ResendPolicy``). A sweep goes
        once through the outbox in row order; it starts at a reconnect, or when the first of
        them falls due (rows in flight are skipped: they stay due until their PUBACK, and the
        next sweep waits ``SWEEP_SPACING_S`` for it)."""
        now = self.clock()
        if self._sweep_after is None:
            if now < self._next_sweep:
                return []
            self._sweep_after, self._swept = 0, 0
        busy = {row for rows, _ in self._inflight.values() for row in rows} | set(self._retry)
        while True:
            due = self.outbox.due(self.s.resend, now, self._connected_at, self.s.batch_size,
                                  self._sweep_after)
            if not due:
                self._end_sweep(now)
                return []
            self._sweep_after = due[-1].row
            batch = [p for p in due if p.row not in busy]
            if batch:
                self._swept += len(batch)
                self.stats.resent_readings += len(batch)
                return batch

    def _end_sweep(self, now: float) -> None:
        if self._swept:
            log.info("sent again %d readings the cloud had not confirmed", self._swept)
        self._sweep_after = None
        first = self.outbox.next_due(self.s.resend, now, self._connected_at)
        if first is None:  # none sent: no sweep until a PUBACK (``_sent``) or a reconnect
            self._next_sweep = math.inf
        else:  # due already: readings in flight, due again only if their PUBACK never comes
            self._next_sweep = first if first > now else now + SWEEP_SPACING_S

    def _pump(self) -> None:
        while self._connected and len(self._inflight) < self.s.max_inflight:
            batch = self._next_batch()
            if not batch:
                return
            payload = Batch(self.gateway_id, now_utc(), tuple(p.body for p in batch),
                            site=self.s.site).encode()
            rows = [p.row for p in batch]
            try:
                mid = self._track(self.client.publish(self._topic, payload, qos=1))
            except MqttError as exc:  # not connected after all, or paho would not take it
                log.warning("batch not published (%s): will send it again", exc)
                self._retry.extend(rows)
                return
            self._inflight[mid] = (rows, time.monotonic())
            self.stats.published_batches += 1

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_heartbeat >= self.s.heartbeat_s:
            self._last_heartbeat = now
            try:  # retained: the next heartbeat says the same, no need to watch this one
                self.client.publish(self._status_topic, self._status_payload("online"),
                                    qos=1, retain=True)
            except MqttError as exc:
                log.info("status not published: %s", exc)

    def _close(self) -> None:
        if self._connected:
            try:
                offline: Delivery | None = self.client.publish(
                    self._status_topic, self._status_payload("offline"), qos=1, retain=True)
            except MqttError as exc:
                log.info("offline status not published: %s", exc)
                offline = None
            deadline = time.monotonic() + 2
            while offline is not None and not offline.done() \
                    and time.monotonic() < deadline:
                if not self.client.loop(timeout=0.05):
                    break
                self._handle_acks()
            if offline is not None:
                offline.cancel()
            self.client.disconnect()
        self._connected = self.stats.connected = False
