"""Notifications: alert changes grouped per patient, routed per site and severity, delivered
through channels that confirm (HTTP webhook signed with HMAC-SHA256, e-mail through SMTP, the
MQTT topic of an EHPAD's on-site nurse console), retried with capped jittered backoff.

The package is fed and it emits: the durable outbox it reads and writes is behind the
``NotifyOutbox`` protocol (``cloud_api.notifications`` keeps it in the relational store, in
the transaction of the alert change), and each channel is an adapter that turns its library's
errors into ``ChannelError``.

Exceptions::

    AlertingError
     └── NotifyError                      root of notification errors
          ├── RoutingError (SettingsError) the routing file is invalid: fix it
          └── ChannelError                 a channel did not confirm a message: retry later
"""

from alerting.notify.config import (
    EscalationSettings,
    MqttSettings,
    Route,
    RoutingConfig,
    SmtpSettings,
    load_routing,
    parse_routing,
)
from alerting.notify.dispatch import Delivery, Dispatcher, NotifyOutbox, PendingEvent, plan
from alerting.notify.errors import ChannelError, NotifyError, RoutingError
from alerting.notify.message import AlertNotice, Message
from alerting.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertNotice",
    "ChannelError",
    "Delivery",
    "Dispatcher",
    "EscalationSettings",
    "Message",
    "MqttSettings",
    "NotifyError",
    "NotifyOutbox",
    "PendingEvent",
    "Route",
    "RoutingConfig",
    "RoutingError",
    "SmtpSettings",
    "load_routing",
    "parse_routing",
    "plan",
    "sign",
    "verify",
]
