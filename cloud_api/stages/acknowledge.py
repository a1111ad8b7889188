"""Acknowledge: tell each gateway which of its readings are now durable on the cloud side.

A gateway keeps a reading in its outbox after the broker's PUBACK (a broker killed before its
next autosave loses what it acknowledged) and deletes it when the cloud names it on
``vigie.contract.stored_topic`` (docs/operator.md, "End-to-end acknowledgement"). A reading is
named once it is written to InfluxDB or quarantined (a refused reading is kept here with its
reason: sending it again would be refused again), and only after the relational transaction
that records its batch committed. A message quarantined whole carries no reading id, and
names nothing. Nor does a refusal that registration undoes (``unregistered-gateway``): the
gateway keeps those readings and sends them again (docs/operator.md), so the ones it took
before a care team registered it are stored once it is.

- ``stored_messages``: sans-I/O, the (topic, payload) of each gateway's message, ids in the
  order met, without repeats, in chunks of at most ``MAX_STORED_IDS``.
- ``Confirmations``: publishes them on the worker's MQTT client (``vigie.mqtt``), QoS 1, not
  retained. It never raises: a message not sent is only logged, the gateway sends the reading
  again later and the cloud's writes are idempotent. A PUBACK with a failure code (the
  broker's ACL) is logged with the gateway it was for.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from cloud_api.db import Quarantine
from cloud_api.stages.refusal import code_of
from cloud_api.stages.work import Sited
from vigie.contract import (
    MAX_STORED_IDS,
    ContractError,
    encode_stored,
    is_reading_id,
    stored_topic,
)
from vigie.mqtt import Delivery, MqttError, NotConnected, PublishRefused

log = logging.getLogger(__name__)

PUBACK_WAIT_S: Final = 60.0  # a message unacknowledged this long is no longer watched
MAX_WATCHED: Final = 10_000  # messages watched for a refusal at most (the oldest go first)

Message = tuple[str, bytes]  # topic, payload
# refusals the gateway keeps the readings of: registering the gateway makes them acceptable
KEPT_BY_GATEWAY: Final = frozenset({"unregistered-gateway"})


def stored_messages(readings: Iterable[Sited], quarantine: Iterable[Quarantine]
                    ) -> list[Message]:
    """The ``stored`` messages for ``readings`` (written to InfluxDB) and ``quarantine`` rows
    (rows without a gateway, or without a reading id of the contract's form, name nothing)."""
    per_gateway: dict[str, dict[str, None]] = {}
    for reading, _ in readings:
        per_gateway.setdefault(reading.gateway_id, {})[reading.id] = None
    for row in quarantine:
        if code_of(row) in KEPT_BY_GATEWAY:
            continue
        if row.gateway_id is not None and is_reading_id(row.reading_id):
            per_gateway.setdefault(row.gateway_id, {})[str(row.reading_id)] = None
    out: list[Message] = []
    for gateway, ids in per_gateway.items():
        try:
            topic = stored_topic(gateway)
        except ContractError:  # not an id a gateway could subscribe with
            continue
        listed = list(ids)
        for start in range(0, len(listed), MAX_STORED_IDS):
            out.append((topic, encode_stored(gateway, listed[start:start + MAX_STORED_IDS])))
    return out


class Publishes(Protocol):
    """What ``Confirmations`` needs of an MQTT client (``vigie.mqtt.MqttClient``)."""

    def publish(self, topic: str, payload: bytes, qos: int = ...,
                retain: bool = ...) -> Delivery: ...


class Confirmations:
    """Publishes ``stored`` messages and watches their PUBACKs, each by its own waiter."""

    def __init__(self, client: Publishes) -> None:
        self.client = client
        self._watched: deque[tuple[Delivery, float]] = deque()
        self.published = 0  # messages handed to the client
        self.failed = 0  # messages the client would not take, or the broker refused

    def send(self, messages: Sequence[Message]) -> None:
        """Publish ``messages``; never raises."""
        self._collect()
        for topic, payload in messages:
            try:
                delivery = self.client.publish(topic, payload, qos=1, retain=False)
            except NotConnected:
                # paho keeps a QoS 1 message and sends it once connected: not watched
                self.published += 1
                continue
            except MqttError as exc:  # never stop ingest for a confirmation
                self._failed(topic, str(exc))
                continue
            self.published += 1
            self._watched.append((delivery, time.monotonic()))
            if len(self._watched) > MAX_WATCHED:
                self._watched.popleft()[0].cancel()

    def _collect(self) -> None:
        """Forget messages answered or too old; log those the broker refused."""
        limit = time.monotonic() - PUBACK_WAIT_S
        kept: deque[tuple[Delivery, float]] = deque()
        for delivery, at in self._watched:
            if delivery.ok is None:
                if at >= limit:
                    kept.append((delivery, at))
                else:
                    delivery.cancel()
            elif isinstance(delivery.error, PublishRefused):
                self._failed(delivery.topic, "refused by the broker (check the service's ACL)")
            # else delivered, or the connection was lost first: paho sends it again then
        self._watched = kept

    def _failed(self, topic: str, why: str) -> None:
        self.failed += 1
        log.error("stored confirmation on %s not published: %s; the gateway will send its "
                  "readings again", topic, why)
