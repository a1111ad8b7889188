"""The channels: adapters that confirm delivery, each translating its library's errors into
``ChannelError`` (nothing from httpx, smtplib or MQTT escapes this module).

Each renders the message in its route's ``language`` (``alerting.notify.message``).

- ``WebhookChannel``: HTTPS POST of the message JSON, signed (``alerting.notify.signing``);
  confirmed by any 2xx answer.
- ``EmailChannel``: SMTP (STARTTLS and login when configured); confirmed when the server
  answers 250 to the end of DATA (``smtplib`` raises otherwise).
- ``NurseConsoleChannel``: MQTT v5 publish at QoS 1, not retained, on the site's
  ``nurse_console_topic``; confirmed by a successful PUBACK (``ConfirmedPublisher`` over
  ``vigie.mqtt``, also used by the gateway for alarms on site).
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable

import httpx

from alerting.notify.config import MqttSettings, Route, SmtpSettings
from alerting.notify.errors import ChannelError
from alerting.notify.message import Message
from alerting.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from vigie.contract import ContractError, nurse_console_topic
from vigie.mqtt import BadSettings, MqttClient, MqttError, Options, PublishRefused, Tls

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
    """An MQTT client (``vigie.mqtt``, own network thread) whose ``publish`` returns only once
    the broker acknowledged (PUBACK with a success reason code), or raises ChannelError."""

    def __init__(self, settings: MqttSettings, timeout: float = 10.0) -> None:
        self.s = settings
        self._timeout = timeout
        tls = None if settings.tls_ca is None else Tls(settings.tls_ca, settings.tls_cert,
                                                        settings.tls_key)
        try:
            self.client = MqttClient(Options(
                host=settings.host, port=settings.port, client_id=settings.client_id,
                keepalive=30, tls=tls, max_queued=1, reconnect_delay=(1, 30)))
        except BadSettings as exc:
            raise ChannelError("mqtt", str(exc), permanent=True) from exc

    @property
    def connected(self) -> bool:
        return self.client.connected

    def publish(self, topic: str, payload: bytes, timeout: float | None = None) -> None:
        timeout = self._timeout if timeout is None else timeout
        self.client.start()
        deadline = time.monotonic() + timeout
        if not self.client.wait_connected(timeout):
            raise ChannelError("mqtt", f"broker {self.s.host}:{self.s.port} unreachable")
        try:
            self.client.publish(topic, payload, qos=1, retain=False).wait(
                max(0.0, deadline - time.monotonic()))
        except PublishRefused as exc:
            raise ChannelError("mqtt", f"broker refused the message: {exc.reason}",
                               permanent=True) from exc
        except MqttError as exc:  # not connected, no PUBACK in time, paho would not take it
            raise ChannelError("mqtt", str(exc)) from exc

    def close(self) -> None:
        self.client.stop()


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
