"""Helpers for BLE session tests: the simulator in-process, a gateway host, a memory sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bumble import gatt
from bumble.core import UUID

from device_drivers.ble.bumble_backend import BumbleHost, BumbleHostConfig
from device_drivers.ble.session import (
    BackoffPolicy,
    BackoffRule,
    BleCentral,
    CentralSettings,
    ClockSample,
    Delivery,
    DeliveryRefused,
    KnownDevice,
    SessionSettings,
)
from firmware_sim.ble import encode_date_time
from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import Thermometer
from vigie.contract import Observation

T = TypeVar("T")

GLU_ADDR, SCALE_ADDR, BP_ADDR, THERMO_ADDR = (
    "C0:00:00:00:18:08", "C0:00:00:00:18:1D", "C0:00:00:00:18:10", "C0:00:00:00:18:09")


def run(scenario: Callable[[], Awaitable[T]], limit: float = 20.0) -> T:
    """Run one scenario on a fresh event loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), limit)

    return asyncio.run(bounded())


def naive_utc() -> datetime:
    """The simulated devices' clock: UTC wall time without a zone, as a meter shows it."""
    return datetime.now(UTC).replace(tzinfo=None)


FAST = CentralSettings(
    scanner_silence_s=30.0, watchdog_tick_s=0.05, max_links=4,
    session=SessionSettings(connect_timeout_s=2.0, step_timeout_s=2.0, record_timeout_s=2.0,
                            idle_s=0.4, max_session_s=15.0, racp_chunk=25),
    backoff=BackoffPolicy(gone=BackoffRule(0.05, 0.5), timeout=BackoffRule(1.0, 5.0),
                          protocol=BackoffRule(0.5, 2.0), refused=BackoffRule(0.1, 0.5),
                          jitter=0.0))


@dataclass
class MemorySink:
    """A ``SessionSink`` that commits in memory; ``refuse`` makes it act as a full outbox."""

    cursors: dict[str, int] = field(default_factory=dict)
    delivered: list[Delivery] = field(default_factory=list)
    clocks: list[ClockSample] = field(default_factory=list)
    refuse: Callable[[Delivery], bool] = lambda _d: False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def resume_after(self, device: KnownDevice) -> int | None:
        return self.cursors.get(device.device_id)

    async def deliver(self, delivery: Delivery) -> None:
        if self.refuse(delivery):
            raise DeliveryRefused("full")
        await asyncio.sleep(0)
        self.delivered.append(delivery)
        if delivery.last_sequence is not None:
            self.cursors[delivery.device.device_id] = delivery.last_sequence
        self.arrived.set()

    async def clock_measured(self, device: KnownDevice, sample: ClockSample) -> None:
        self.clocks.append(sample)

    def observations(self, device_id: str | None = None) -> list[Observation]:
        return [o for d in self.delivered for o in d.observations
                if device_id is None or d.device.device_id == device_id]

    def sequences(self, device_id: str) -> list[int | None]:
        return [o.sequence for o in self.observations(device_id)]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.arrived.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.1)


@asynccontextmanager
async def gateway_host(sim: SimulatedLink, keystore: Path | None = None
                       ) -> AsyncIterator[BumbleHost]:
    async with BumbleHost(BumbleHostConfig(sim.hci_transport, keystore_path=keystore)) as host:
        yield host


@asynccontextmanager
async def running(central: BleCentral) -> AsyncIterator[asyncio.Task[None]]:
    """Run the central in the background; cancel it (bounded) on exit."""
    task = asyncio.create_task(central.run())
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            async with asyncio.timeout(5.0):
                await task


def central_for(host: BumbleHost, devices: list[KnownDevice], sink: MemorySink,
                settings: CentralSettings = FAST) -> BleCentral:
    scanner, client = host.backends()
    return BleCentral(devices, sink, scanner_backend=scanner, client_backend=client,
                      settings=settings, rnd=lambda: 0.5)


class ClockThermometer(Thermometer):
    """A thermometer that also exposes its clock (Current Time Service 0x1805, 0x2A2B).

    The simulator's devices do not expose a current time; real ones often do (CTS).
    Exact Time 256: Date Time, day of week, fractions256, adjust reason (CTS 3.1).
    """

    def _all_services(self) -> list[gatt.Service]:
        def current_time(_connection: Any) -> bytes:
            now = self.device_time()
            return encode_date_time(now) + bytes([now.isoweekday(), 0, 0])

        value: gatt.CharacteristicValue[bytes] = gatt.CharacteristicValue(read=current_time)
        char: gatt.Characteristic[bytes] = gatt.Characteristic(
            UUID.from_16_bits(0x2A2B), gatt.Characteristic.Properties.READ,
            gatt.Characteristic.Permissions.READABLE, value)
        return [*super()._all_services(), gatt.Service(UUID.from_16_bits(0x1805), [char])]
