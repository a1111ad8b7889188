"""The channels: adapters that confirm delivery, each translating its library's errors into
``ChannelError`` (nothing from httpx, smtplib or paho escapes this module).

Each renders the message in its route's ``language`` (``alerting.notify.message``).

- ``WebhookChannel``: HTTPS POST of the message JSON, signed (``alerting.notify.signing``);
  confirmed by any 2xx answer.
- ``EmailChannel``: SMTP (STARTTLS and login when configured); confirmed when the server
  answers 250 to the end of DATA (``smtplib`` raises otherwise).
- ``NurseConsoleChannel``: MQTT v5 publish at QoS 1, not retained, on the site's
  ``nurse_console_topic``; confirmed by a successful PUBACK (``ConfirmedPublisher``, also used
  by the gateway for alarms on site).
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from alerting.notify.config import MqttSettings, Route, SmtpSettings
from alerting.notify.errors import ChannelError
from alerting.notify.message import Message
from alerting.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from vigie.contract import ContractError, nurse_console_topic

log = logging.getLogger(__name__)

__all__ = ["ConfirmedPublisher", "EmailChannel", "NurseConsoleChannel", "WebhookChannel"]


class WebhookChannel:
    name = "webhook"

    def __init__(self, timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._clock = clock

    def send(self, route: Route, message: Message) -> None:
        if route.url is None or route.secret is None:
            raise ChannelError(self.name, f"route {route.name} has no url/secret", permanent=True)
        body = message.body(route.language)
        stamp = int(self._clock())
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(stamp),
                   SIGNATURE_HEADER: sign(route.secret.encode(), stamp, body),
                   DELIVERY_HEADER: message.key}
        try:
            resp = self._http.post(route.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(self.name, f"{type(exc).__name__}: {exc}") from exc
        if not resp.is_success:
            permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 429)
            raise ChannelError(self.name, f"HTTP {resp.status_code}", permanent=permanent)

    def close(self) -> None:
        self._http.close()


class EmailChannel:
    name = "email"

    def __init__(self, settings: SmtpSettings, timeout: float = 10.0) -> None:
        self.s = settings
        self._timeout = timeout

    def send(self, route: Route, message: Message) -> None:
        email = message.email(self.s.sender, route.to, route.language, route.zone)
        try:
            with smtplib.SMTP(self.s.host, self.s.port, timeout=self._timeout) as smtp:
                if self.s.starttls:
                    smtp.starttls()
                if self.s.username is not None:
                    smtp.login(self.s.username, self.s.password or "")
                refused = smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(self.name, f"every recipient refused: {exc.recipients}",
                               permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(self.name, f"{type(exc).__name__}: {exc}") from exc
        if refused:  # accepted for the others: resending would duplicate theirs
            log.error("SMTP refused %d recipient(s) of %s: %s", len(refused), message.key,
                      sorted(refused))

    def close(self) -> None:
        pass


class ConfirmedPublisher:
    """A paho client (MQTT v5, own network thread) whose ``publish`` returns only once the
    broker acknowledged (PUBACK with a success reason code), or raises ChannelError."""

    def __init__(self, settings: MqttSettings, timeout: float = 10.0) -> None:
        self.s = settings
        self._timeout = timeout
        self._cond = threading.Condition()
        self._acks: dict[int, ReasonCode] = {}
        self._abandoned: set[int] = set()
        self._connected = False
        self._started = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 30)
        self.client.max_queued_messages_set(1)
        if settings.tls_ca is not None:
            self.client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert,
                                keyfile=settings.tls_key)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        return self._connected

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    rc: ReasonCode, props: Properties | None) -> None:
        with self._cond:
            self._connected = not rc.is_failure
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       rc: ReasonCode, props: Properties | None) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        with self._cond:
            if mid in self._abandoned:
                self._abandoned.discard(mid)
                return
            self._acks[mid] = rc
            self._cond.notify_all()

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self.client.connect_async(self.s.host, self.s.port, keepalive=30)
            self.client.loop_start()

    def publish(self, topic: str, payload: bytes, timeout: float | None = None) -> None:
        timeout = self._timeout if timeout is None else timeout
        self._ensure_started()
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._connected, timeout):
                raise ChannelError("mqtt", f"broker {self.s.host}:{self.s.port} unreachable")
        # not under our lock: paho calls on_publish holding its own message lock
        info = self.client.publish(topic, payload, qos=1, retain=False)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ChannelError("mqtt", f"publish failed: {mqtt.error_string(info.rc)}")
        with self._cond:
            left = max(0.0, deadline - time.monotonic())
            if not self._cond.wait_for(lambda: info.mid in self._acks, left):
                self._abandoned.add(info.mid)  # a late PUBACK must not confirm another
                raise ChannelError("mqtt", f"no PUBACK within {timeout:.0f} s")
            rc = self._acks.pop(info.mid)
        if rc.is_failure:
            raise ChannelError("mqtt", f"broker refused the message: {rc}", permanent=True)

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            # paho keeps the wake-up socket pair of loop_start open until garbage collection
            # (a ResourceWarning then); close it with the client's own (private) reset
            reset = getattr(self.client, "_reset_sockets", None)
            if callable(reset):
                reset()
            self._started = False


class NurseConsoleChannel:
    name = "nurse_console"

    def __init__(self, settings: MqttSettings, timeout: float = 10.0) -> None:
        self._mqtt = ConfirmedPublisher(settings, timeout)

    def send(self, route: Route, message: Message) -> None:
        if message.site is None:
            raise ChannelError(self.name, f"patient of {message.key} has no site",
                               permanent=True)
        try:
            topic = nurse_console_topic(message.site)
        except ContractError as exc:
            raise ChannelError(self.name, str(exc), permanent=True) from exc
        self._mqtt.publish(topic, message.body(route.language))

    def close(self) -> None:
        self._mqtt.close()
