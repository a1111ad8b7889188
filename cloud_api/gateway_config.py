"""Device lists pushed to gateways: the registry's pairings and assignments, over MQTT.

A gateway attributes readings with the devices it knows (its TOML, then what the cloud sent).
Every device change in the registry (``cloud_api.routes.registry``) calls ``bump`` in its own
transaction: the version of each gateway it touches (the device's gateway before and after)
grows in ``gateway_config``. ``ConfigPublisher.step``, run by one ingest worker on its loop,
publishes the full list of each gateway whose version is ahead of what was published
(retained, QoS 1, ``vigie.contract.devices_config_topic``) and records the version as
published only once the broker acknowledged it. A change made while the broker is down, or
while no worker runs, is published as soon as one is connected; a retained message reaches a
gateway that connects later.

Which worker publishes: ``--role all`` (the single process), and in the scale-out the shard
worker owning shard 0 (exactly one process: every shard has exactly one owner). Intake
workers and the other shard workers do not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db import Device, GatewayConfig
from vigie.contract import (
    DeviceAssignment,
    GatewayDevices,
    devices_config_topic,
    now_utc,
)
from vigie.mqtt import Delivery, MqttError, PublishRefused

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the worker looks for lists to publish
PUBACK_TIMEOUT_S = 30.0  # publish again when the broker has not acknowledged by then


def bump(session: Session, gateways: Iterable[str | None]) -> None:
    """Mark the device lists of ``gateways`` changed, in the caller's transaction.

    A version is the change's time in milliseconds (or one more than the last, if the clock
    is behind): a cloud database restored from a backup or recreated still publishes
    versions newer than those its gateways applied, which they would otherwise ignore.
    """
    now = now_utc()
    stamp = int(now.timestamp() * 1000)
    for gateway in sorted({g for g in gateways if g is not None}):
        row = session.get(GatewayConfig, gateway)
        if row is None:
            session.add(GatewayConfig(gateway_id=gateway, version=stamp, published_version=0,
                                      changed_at=now))
        else:
            row.version, row.changed_at = max(row.version + 1, stamp), now
    session.flush()


def device_list(session: Session, gateway: str, version: int) -> GatewayDevices:
    rows = session.scalars(select(Device).where(Device.gateway_id == gateway)
                           .order_by(Device.id))
    return GatewayDevices(gateway, version, tuple(
        DeviceAssignment(d.id, None if d.shared else d.patient_id, d.shared) for d in rows))


class Publishes(Protocol):
    """What ``ConfigPublisher`` needs of an MQTT client (``vigie.mqtt.MqttClient``)."""

    def publish(self, topic: str, payload: bytes, qos: int = ...,
                retain: bool = ...) -> Delivery: ...


@dataclass
class _InFlight:
    version: int
    delivery: Delivery
    sent_at: float


class ConfigPublisher:
    """Publishes pending device lists on the worker's MQTT client; never blocks for long
    (one SQL query per ``POLL_S``, PUBACKs checked on the next steps)."""

    def __init__(self, sessions: sessionmaker[Session], client: Publishes) -> None:
        self.sessions = sessions
        self.client = client
        self._inflight: dict[str, _InFlight] = {}
        self._hold: dict[str, float] = {}  # gateway -> not before (after a refusal)
        self._next_poll = 0.0
        self.published = 0

    def step(self, connected: bool) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_S
        self._collect_acks(now)
        if not connected:
            return
        with self.sessions.begin() as session:
            due = session.scalars(select(GatewayConfig).where(
                GatewayConfig.version > GatewayConfig.published_version)).all()
            lists = [device_list(session, row.gateway_id, row.version) for row in due
                     if row.gateway_id not in self._inflight
                     and self._hold.get(row.gateway_id, 0.0) <= now]
        for devices in lists:
            try:
                delivery = self.client.publish(devices_config_topic(devices.gateway_id),
                                               devices.encode(), qos=1, retain=True)
            except MqttError as exc:
                log.warning("device list of %s not published (%s); will retry",
                            devices.gateway_id, exc)
                continue
            self._inflight[devices.gateway_id] = _InFlight(devices.version, delivery, now)

    def _collect_acks(self, now: float) -> None:
        done: list[tuple[str, int]] = []
        for gateway, sent in list(self._inflight.items()):
            ok = sent.delivery.ok
            if ok is None:
                if now - sent.sent_at > PUBACK_TIMEOUT_S:
                    log.warning("no PUBACK for the device list of %s: will publish again",
                                gateway)
                    sent.delivery.cancel()
                    del self._inflight[gateway]
                continue
            del self._inflight[gateway]
            if ok:
                done.append((gateway, sent.version))
            elif isinstance(sent.delivery.error, PublishRefused):
                self._hold[gateway] = now + PUBACK_TIMEOUT_S
                log.error("the broker refused the device list of %s (version %d): will try "
                          "again in %.0f s (check the service's ACL)", gateway, sent.version,
                          PUBACK_TIMEOUT_S)
            else:  # the connection was lost before the PUBACK: publish again once back
                log.info("device list of %s unacknowledged (%s): will publish again",
                         gateway, sent.delivery.error)
        if not done:
            return
        with self.sessions.begin() as session:
            for gateway, version in done:
                session.execute(update(GatewayConfig).where(
                    GatewayConfig.gateway_id == gateway,
                    GatewayConfig.published_version < version).values(published_version=version))
        for gateway, version in done:
            self.published += 1
            log.info("device list of %s published (version %d)", gateway, version)
