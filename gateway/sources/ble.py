"""BLE source: health devices read over bleak, readings committed through the intake.

Configuration (one ``[[sources]]`` entry of the gateway TOML)::

    [[sources]]
    type = "ble"
    name = "ble"
    transport = "bluez"            # default: bleak's platform backend (BlueZ on a Pi);
                                   # "tcp-client:127.0.0.1:9001" (any bumble transport spec,
                                   # e.g. the simulator or "usb:0") -> the bumble backend
    keystore = "bonds.json"        # bumble backend only: bonds survive restarts (BlueZ keeps
                                   # its own in /var/lib/bluetooth)
    host_address = "F0:F1:F2:F3:F4:F5"  # bumble backend only, optional: the gateway's address
    devices = [
      { address = "C0:00:00:00:18:08", device = "glu-1", profile = "glucometer" },
      { address = "C0:00:00:00:18:1D", device = "scale-1", profile = "scale" },
    ]                              # profile: glucometer, scale, bp, oximeter, thermometer
    # optional tuning: connect_timeout_s, idle_s, record_timeout_s, max_session_s,
    # scanner_silence_s, max_links, racp_chunk

Devices not listed that advertise a health service are logged (once) and not read: only a
configured device is attributed to a patient (``[[devices]]`` with the same id; a multi-user
scale maps user index -> patient there).

Durability. A BLE indication is confirmed by the host stack (BlueZ or bumble) before our
callback runs, so the device can never be told "not taken". What protects a reading:

- stored-record devices (glucometers, RACP): the durable copy is the device memory. Each
  chunk of records is committed with the cursor ``(<source>:<device>, <last sequence>)`` in
  the same outbox transaction; every session asks for "records >= cursor + 1". A gateway
  restart, a link lost mid-transfer or a refusal (outbox full, the transfer is aborted with
  RACP Abort) all resume exactly after the last committed record: nothing lost, nothing twice.
- devices without memory (indications only): the window of loss is the time between the
  indication and the outbox commit (milliseconds, one SQLite transaction). When the outbox is
  full the reading is held in memory and retried, the device is not read meanwhile.

The clock offset measured on a device that exposes its current time (CTS 0x2A2B or Date Time
0x2A08) replaces the configured ``clock_offset_s`` of that device for the readings after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from device_drivers.ble.session import (
    BleCentral,
    CentralSettings,
    ClockSample,
    Delivery,
    DeliveryRefused,
    KnownDevice,
    Profile,
    SessionSettings,
)
from gateway.errors import ConfigError, OutboxFull
from gateway.intake import Intake
from gateway.sources.base import Source
from gateway.timefix import zone
from vigie.contract import ContractError, check_id

__all__ = ["BleSource"]

log = logging.getLogger(__name__)

BLUEZ = "bluez"
_CLOCK_CHANGE_S = 2.0  # below this a new measurement is noise (Date Time has 1 s steps)


class BleSource(Source):
    kind = "ble"
    resumable = True

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        self.transport = str(options.get("transport", BLUEZ))
        keystore = options.get("keystore")
        self.keystore = None if keystore is None else Path(str(keystore))
        self.host_address = options.get("host_address")
        self.devices = [self._device(entry) for entry in options.get("devices", [])]
        self.settings = self._settings(options)
        self.central: BleCentral | None = None

    def _device(self, entry: Any) -> KnownDevice:
        try:
            return KnownDevice(str(entry["address"]).upper(),
                               check_id(str(entry["device"]), "device"),
                               Profile(str(entry["profile"])))
        except (KeyError, TypeError, ValueError, ContractError) as exc:
            known = ", ".join(p.value for p in Profile)
            raise ConfigError(f"ble source {self.name!r}: bad device entry {entry!r} ({exc}); "
                              f"needs address, device and profile ({known})") from exc

    def _settings(self, o: dict[str, Any]) -> CentralSettings:
        base, session = CentralSettings(), SessionSettings()
        try:
            session = replace(
                session,
                connect_timeout_s=float(o.get("connect_timeout_s", session.connect_timeout_s)),
                idle_s=float(o.get("idle_s", session.idle_s)),
                record_timeout_s=float(o.get("record_timeout_s", session.record_timeout_s)),
                max_session_s=float(o.get("max_session_s", session.max_session_s)),
                racp_chunk=int(o.get("racp_chunk", session.racp_chunk)))
            return replace(
                base, session=session, max_links=int(o.get("max_links", base.max_links)),
                scanner_silence_s=float(o.get("scanner_silence_s", base.scanner_silence_s)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"ble source {self.name!r}: bad setting ({exc})") from exc

    def cursor_name(self, device: KnownDevice) -> str:
        return f"{self.name}:{device.device_id}"

    async def run(self, intake: Intake) -> None:
        sink = _IntakeSink(self, intake)
        async with self._backends() as (scanner, client, on_failure):
            self.central = BleCentral(self.devices, sink, scanner_backend=scanner,
                                      client_backend=client, settings=self.settings,
                                      on_stack_failure=on_failure)
            log.info("ble source %s: %d device(s) on %s", self.name, len(self.devices),
                     self.transport)
            await self.central.run()

    @contextlib.asynccontextmanager
    async def _backends(self) -> AsyncIterator[tuple[Any, Any, Any]]:
        """bleak's default backend, or the bumble backend on an HCI transport."""
        if self.transport == BLUEZ:
            yield None, None, None
            return
        from device_drivers.ble.bumble_backend import BumbleHost, BumbleHostConfig

        config = BumbleHostConfig(self.transport, keystore_path=self.keystore,
                                  address=None if self.host_address is None
                                  else str(self.host_address))
        async with BumbleHost(config) as host:
            scanner, client = host.backends()
            # A transport that failed (controller reset, simulator restarted) is reopened.
            yield scanner, client, host.aclose


class _IntakeSink:
    """Sessions -> intake: commits with the RACP cursor, outbox full -> refusal."""

    def __init__(self, source: BleSource, intake: Intake) -> None:
        self.source = source
        self.intake = intake

    def resume_after(self, device: KnownDevice) -> int | None:
        saved = self.intake.outbox.cursor(self.source.cursor_name(device))
        return None if saved is None else int(saved)

    async def deliver(self, delivery: Delivery) -> None:
        device = delivery.device
        cursor = None
        if delivery.last_sequence is not None:
            cursor = (self.source.cursor_name(device), str(delivery.last_sequence))
        try:
            # The commit is a synchronous SQLite transaction: off the event loop.
            await asyncio.to_thread(self.intake.take, device.device_id,
                                    list(delivery.observations), cursor)
        except OutboxFull as exc:
            raise DeliveryRefused(str(exc), step="deliver", address=device.address) from exc

    async def clock_measured(self, device: KnownDevice, sample: ClockSample) -> None:
        profile = self.intake.profile(device.device_id)
        offset = sample.offset_s(zone(profile.tz))
        if abs(offset - profile.clock_offset_s) < _CLOCK_CHANGE_S:
            return
        log.info("%s: device clock offset measured %+.0f s (was %+.0f s)", device.device_id,
                 offset, profile.clock_offset_s)
        self.intake.set_clock_offset(device.device_id, offset)
