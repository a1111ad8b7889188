"""One MQTT client layer for the whole project (paho-mqtt 2.x, MQTT v5).

Every Vigie process talks MQTT through ``MqttClient``: the gateway publisher, the cloud's
ingest roles (with their stored confirmations, device lists and shard routing) and the nurse
console channel (on the cloud and on a gateway's local broker). What it adds to paho:

- **A waiter per publish.** ``publish`` returns a ``Delivery`` registered under the message
  id *before* paho can send the packet (paho calls ``on_publish`` on its network thread,
  possibly before ``publish()`` has returned), resolved by ``on_publish`` with the PUBACK's
  reason code. A reason code >= 0x80 (the broker's ACL, MQTT v5) is ``PublishRefused``, never
  "published". When the connection is lost every pending waiter fails with ``NotConnected``;
  a waiter given up (``Delivery.wait`` timing out, ``Delivery.cancel``) is removed at once, so
  a late PUBACK cannot confirm another message and nothing accumulates. Callers are threads
  (no asyncio caller publishes): ``Delivery.wait`` blocks, ``Delivery.ok`` polls and
  ``add_done_callback`` runs on the thread that resolved it.
- **Subscriptions kept.** ``subscribe(filter, handler)`` holds for the client's life: sent
  again at every connection (a broker that lost its store forgets them), and each message is
  dispatched to the handler(s) whose filter matches its topic (paho's topic matcher; a
  ``$share/<group>/`` prefix is matched without it). A handler that raises is logged.
- **State to ask.** ``connected``, ``subscribed`` (every subscription of the last
  connection granted), ``last_error``; hooks ``on_connect``, ``on_disconnect``,
  ``on_subscribe`` (run on paho's thread).
- **Errors** (module-level hierarchy)::

      MqttError            anything this layer reports
      ├── BadSettings      TLS files that cannot be loaded
      ├── NotConnected     no connection, or lost before the PUBACK
      ├── PublishFailed    paho would not take the message (too large, queue full)
      ├── PublishRefused   the broker answered with a failure reason code
      └── PublishTimeout   no PUBACK in time

Two ways to run the network loop: ``start``/``stop`` (paho's own thread, asynchronous
connection and reconnection) or ``connect``/``loop`` on the caller's thread (the gateway
publisher, which keeps its own backoff).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

__all__ = ["BadSettings", "Delivery", "Message", "MqttClient", "MqttError", "NotConnected",
           "Options", "PublishFailed", "PublishRefused", "PublishTimeout", "Tls", "Will"]

Message = paho.MQTTMessage
Handler = Callable[[paho.MQTTMessage], None]

# paho numbers each message in ``Client._mid_generate`` before it takes its message lock;
# the hook there is how a waiter exists before the PUBACK can be handled (see ``_Paho``).
if not hasattr(paho.Client, "_mid_generate"):  # pragma: no cover - a paho we do not know
    raise ImportError("vigie.mqtt needs paho-mqtt 2.x (Client._mid_generate)")

SHARE_PREFIX: Final = "$share/"


class MqttError(Exception):
    """Root of this layer's errors."""


class BadSettings(MqttError):
    """The client cannot be configured as asked (TLS files)."""


class NotConnected(MqttError):
    """No connection to the broker, or the connection was lost before the PUBACK."""


class PublishFailed(MqttError):
    """paho did not take the message (payload too large, its queue full)."""


class PublishRefused(MqttError):
    """The broker answered the publish with a failure reason code (>= 0x80)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(f"broker refused the message on {topic}: {reason}")
        self.reason = reason


class PublishTimeout(MqttError):
    """No PUBACK within the time given."""


@dataclass(frozen=True)
class Tls:
    """Secure profile (docs/security.md): the CA that signed the broker, and the client's own
    certificate and key (None: server authentication only)."""

    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class Options:
    """How to connect; every field left at its default is paho's own default."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    keepalive: int = 30
    tls: Tls | None = None
    # None: paho's default for MQTT v5 (clean start on the first connection only)
    clean_start: bool | None = None
    session_expiry_s: int | None = None  # MQTT v5 Session Expiry Interval
    receive_maximum: int | None = None  # MQTT v5 Receive Maximum
    manual_ack: bool = False  # messages acknowledged by ``ack``, not on return of the handler
    max_inflight: int | None = None
    max_queued: int | None = None  # paho's outgoing queue (None: unbounded)
    reconnect_delay: tuple[int, int] | None = None  # loop thread's reconnect backoff, s
    connect_timeout: float | None = None


class Delivery:
    """The broker's answer to one publish, to wait on (``wait``) or poll (``ok``)."""

    __slots__ = ("_callbacks", "_client", "_done", "error", "mid", "topic")

    def __init__(self, client: MqttClient | None, topic: str) -> None:
        self._client = client
        self.topic = topic
        self.mid: int | None = None
        self.error: MqttError | None = None  # set with the outcome when not delivered
        self._done = threading.Event()
        self._callbacks: list[Callable[[Delivery], None]] = []

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def ok(self) -> bool | None:
        """None while waiting; True once the broker took it; False when not delivered."""
        if not self._done.is_set():
            return None
        return self.error is None

    def wait(self, timeout: float | None = None) -> None:
        """Return once the broker acknowledged the message with success, else raise
        ``PublishRefused``, ``NotConnected`` or ``PublishTimeout``. Whatever happens the
        waiter is no longer registered afterwards."""
        try:
            if not self._done.wait(timeout):
                raise PublishTimeout(f"no PUBACK for the message on {self.topic} within "
                                     f"{timeout:.1f} s")
            if self.error is not None:
                raise self.error
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop waiting: a PUBACK arriving later is ignored."""
        if self._client is not None and self.mid is not None:
            self._client._forget(self.mid, self)

    def add_done_callback(self, callback: Callable[[Delivery], None]) -> None:
        """``callback(self)`` once resolved, on the thread that resolves it (at once when
        already resolved)."""
        if self._done.is_set():
            callback(self)
        else:
            self._callbacks.append(callback)

    def _resolve(self, error: MqttError | None) -> None:
        if self._done.is_set():
            return
        self.error = error
        self._done.set()
        for callback in self._callbacks:
            try:
                callback(self)
            except Exception:  # one caller's bug must not keep paho from the next packet
                log.exception("a delivery callback for %s failed", self.topic)
        self._callbacks.clear()


class _Paho(paho.Client):
    """paho's client, with the waiter of a publish registered as its message id is made."""

    pending_delivery: threading.local

    def _mid_generate(self) -> int:
        mid = super()._mid_generate()
        register: Callable[[int], None] | None = getattr(self.pending_delivery, "register",
                                                         None)
        if register is not None:
            self.pending_delivery.register = None
            register(mid)
        return mid


@dataclass
class _Subscription:
    filter: str
    qos: int
    handlers: list[Handler]


class MqttClient:
    """A paho client (MQTT v5, callback API 2) with the additions of the module docstring."""

    def __init__(self, options: Options, *, will: Will | None = None) -> None:
        self.options = options
        self._lock = threading.Lock()  # the waiters, never held while calling paho
        self._waiters: dict[int, Delivery] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._suback_pending: set[int] = set()
        self._handlers: dict[str, list[Handler]] = {}  # by the filter matched
        self._state = threading.Condition()
        self._connected = False
        self._subscribed = False
        self._started = False
        self._connect_called = False
        self.last_error: str | None = None
        self.on_connect: Callable[[bool], None] | None = None  # session present
        self.on_disconnect: Callable[[int], None] | None = None  # reason code value
        self.on_subscribe: Callable[[bool], None] | None = None  # all granted, at a connection
        self.paho = self._make(options, will)

    def _make(self, o: Options, will: Will | None) -> _Paho:
        client = _Paho(CallbackAPIVersion.VERSION2, client_id=o.client_id,
                       protocol=paho.MQTTv5, manual_ack=o.manual_ack)
        client.pending_delivery = threading.local()
        if o.max_inflight is not None:
            client.max_inflight_messages_set(o.max_inflight)
        if o.max_queued is not None:
            client.max_queued_messages_set(o.max_queued)
        if o.reconnect_delay is not None:
            client.reconnect_delay_set(*o.reconnect_delay)
        if o.connect_timeout is not None:
            client.connect_timeout = o.connect_timeout
        if o.tls is not None:
            try:
                client.tls_set(ca_certs=o.tls.ca, certfile=o.tls.cert, keyfile=o.tls.key)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise BadSettings(f"MQTT TLS files: {exc}") from exc
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_unmatched
        return client

    # -- state ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Connected, and every subscription sent at this connection granted."""
        return self._connected and self._subscribed

    def pending(self) -> int:
        """Waiters registered (publishes neither answered nor given up)."""
        with self._lock:
            return len(self._waiters)

    def wait_connected(self, timeout: float) -> bool:
        with self._state:
            return self._state.wait_for(lambda: self._connected, timeout)

    # -- connection -----------------------------------------------------------------------
    def _connect_properties(self) -> Properties | None:
        o = self.options
        if o.session_expiry_s is None and o.receive_maximum is None:
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if o.session_expiry_s is not None:
            props.SessionExpiryInterval = o.session_expiry_s
        if o.receive_maximum is not None:
            props.ReceiveMaximum = o.receive_maximum
        return props

    def _clean_start(self) -> bool | Literal[3]:
        o = self.options
        return paho.MQTT_CLEAN_START_FIRST_ONLY if o.clean_start is None else o.clean_start

    def start(self) -> None:
        """Connect in the background (paho's thread), reconnecting for as long as it runs."""
        if self._started:
            return
        self._started = True
        self.paho.connect_async(self.options.host, self.options.port,
                                keepalive=self.options.keepalive,
                                clean_start=self._clean_start(),
                                properties=self._connect_properties())
        self.paho.loop_start()

    def stop(self) -> None:
        """Disconnect and stop paho's thread; pending waiters fail with NotConnected."""
        if not self._started:
            return
        self._started = False
        self.paho.disconnect()
        self.paho.loop_stop()
        self._lost()
        # paho keeps the wake-up socket pair of loop_start open until garbage collection
        # (a ResourceWarning then); close it with the client's own (private) reset
        reset = getattr(self.paho, "_reset_sockets", None)
        if callable(reset):
            reset()

    def connect(self) -> None:
        """Open the connection on the caller's thread (the first time, then reconnect);
        ``loop`` then runs the exchange. Raises OSError when the broker is unreachable."""
        if not self._connect_called:
            self._connect_called = True
            self.paho.connect(self.options.host, self.options.port,
                              keepalive=self.options.keepalive,
                              clean_start=self._clean_start(),
                              properties=self._connect_properties())
        else:
            self.paho.reconnect()

    def loop(self, timeout: float) -> bool:
        """One round of paho's network loop on the caller's thread; False (and pending
        waiters failed) when the connection is gone."""
        if self.paho.loop(timeout=timeout) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return True
        self._lost()
        return False

    def disconnect(self) -> None:
        """Close the connection opened by ``connect`` (DISCONNECT sent by the next loop)."""
        self.paho.disconnect()
        self.paho.loop(timeout=0.1)
        self._lost()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode,
                    props: Properties | None) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused connection: {rc}"
            log.error("broker %s:%d refused the connection of %s: %s", self.options.host,
                      self.options.port, self.options.client_id or "(no id)", rc)
            return
        with self._state:
            self._connected = True
            self._state.notify_all()
        self._resubscribe()
        if self.on_connect is not None:
            self.on_connect(bool(getattr(flags, "session_present", False)))

    def _resubscribe(self) -> None:
        subs = list(self._subscriptions.values())
        self._subscribed = not subs
        if not subs:
            return
        rc, mid = self.paho.subscribe([(s.filter, s.qos) for s in subs])
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._suback_pending.add(mid)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      codes: list[ReasonCode], props: Properties | None) -> None:
        if mid not in self._suback_pending:
            return
        self._suback_pending.discard(mid)
        failed = [c for c in codes if c.is_failure]
        if failed:
            self._subscribed = False
            self.last_error = f"subscription refused: {failed}"
            log.error("broker refused a subscription of %s: %s",
                      sorted(self._subscriptions), failed)
        else:
            self._subscribed = True
        if self.on_subscribe is not None:
            self.on_subscribe(not failed)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode,
                       props: Properties | None) -> None:
        self._lost()
        if rc.value != 0:
            log.warning("disconnected from broker %s:%d: %s", self.options.host,
                        self.options.port, rc)
        if self.on_disconnect is not None:
            self.on_disconnect(rc.value)

    def _lost(self) -> None:
        """The connection is gone: every waiter fails (paho may still send the message
        again at the next connection; its PUBACK is then ignored)."""
        with self._state:
            self._connected = self._subscribed = False
            self._suback_pending.clear()
            self._state.notify_all()
        with self._lock:
            waiters, self._waiters = list(self._waiters.values()), {}
        for waiter in waiters:
            waiter._resolve(NotConnected(f"connection lost before the PUBACK of the message "
                                         f"on {waiter.topic}"))

    # -- publishing -----------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> Delivery:
        """Hand the message to paho; the ``Delivery`` says what the broker answered.

        Raises ``NotConnected`` when there is no connection (paho keeps a QoS > 0 message
        and sends it at the next connection: a caller that sends again may duplicate it),
        ``PublishFailed`` when paho will not take it."""
        delivery = Delivery(self, topic)

        def register(mid: int) -> None:
            delivery.mid = mid
            with self._lock:
                stale = self._waiters.get(mid)
                self._waiters[mid] = delivery
            if stale is not None:  # 65,535 publishes later, still unanswered
                stale._resolve(PublishTimeout(f"message id {mid} reused"))

        local = self.paho.pending_delivery
        local.register = register
        try:
            info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:  # topic, QoS or payload size
            delivery.cancel()
            raise PublishFailed(f"{topic}: {exc}") from exc
        except BaseException:  # registered, never to be answered: no waiter left behind
            delivery.cancel()
            raise
        finally:
            local.register = None
        if delivery.mid is None:  # pragma: no cover - paho numbered it elsewhere
            raise MqttError("paho published without numbering the message (unknown paho)")
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return delivery
        delivery.cancel()
        if info.rc in (MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_CONN_LOST):
            raise NotConnected(f"not connected: message on {topic} left to paho's queue")
        raise PublishFailed(f"{topic}: {paho.error_string(info.rc)}")

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        with self._lock:
            waiter = self._waiters.pop(mid, None)
        if waiter is None:
            return  # given up (timeout, disconnect) or sent again by paho after a reconnect
        waiter._resolve(PublishRefused(waiter.topic, rc) if rc.is_failure else None)

    def _forget(self, mid: int, delivery: Delivery) -> None:
        with self._lock:
            if self._waiters.get(mid) is delivery:
                del self._waiters[mid]

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Subscribe now if connected and at every connection; ``handler`` gets each message
        matching ``topic_filter`` on paho's network thread."""
        sub = self._subscriptions.get(topic_filter)
        if sub is None:
            sub = self._subscriptions[topic_filter] = _Subscription(topic_filter, qos, [])
            match = _match_filter(topic_filter)
            handlers = self._handlers.get(match)
            if handlers is None:
                handlers = self._handlers[match] = []
                self.paho.message_callback_add(match, self._dispatcher(handlers))
            sub.handlers = handlers
        sub.handlers.append(handler)
        if self._connected:
            rc, mid = self.paho.subscribe(topic_filter, qos)
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._suback_pending.add(mid)

    def filters(self) -> list[str]:
        return list(self._subscriptions)

    def _dispatcher(self, handlers: list[Handler]
                    ) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
        def dispatch(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
            for handler in handlers:
                try:
                    handler(msg)
                except Exception:  # a handler's bug must not stop paho's loop
                    log.exception("handling a message on %s failed", msg.topic[:200])
        return dispatch

    def _on_unmatched(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        log.warning("message on unexpected topic %s ignored", msg.topic[:200])

    def ack(self, msg: paho.MQTTMessage) -> None:
        """Acknowledge a message received with ``manual_ack`` (QoS 0 needs none)."""
        if msg.qos > 0:
            self.paho.ack(msg.mid, msg.qos)


def _match_filter(topic_filter: str) -> str:
    """The filter a message's topic is matched against: a shared subscription
    ``$share/<group>/<filter>`` delivers topics of ``<filter>``."""
    if topic_filter.startswith(SHARE_PREFIX):
        return topic_filter.split("/", 2)[2]
    return topic_filter


def wait_all(deliveries: dict[str, Delivery], deadline: float) -> dict[str, MqttError | None]:
    """Wait for each delivery until ``deadline`` (monotonic); the outcome of each."""
    out: dict[str, MqttError | None] = {}
    for key, delivery in deliveries.items():
        try:
            delivery.wait(max(0.0, deadline - time.monotonic()))
            out[key] = None
        except MqttError as exc:
            out[key] = exc
    return out
