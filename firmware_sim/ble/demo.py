"""BLE peripherals for given patients on a simulated link, and the gateway config to read them.

For the demo and for end-to-end tests::

    async with BleDemo(ble_demo_devices(["p-001", "p-002"]), records=20) as demo:
        source = demo.source_config()      # a [[sources]] entry (type "ble")
        devices = demo.devices_config()    # [[devices]] entries: device id -> patient
        ...                                # run a gateway with them

or as a process (prints one JSON line ``{"transport", "source", "devices"}``, then serves)::

    python -m firmware_sim.ble.demo --port 9001 --patient p-001 --patient p-002 --records 20

Each patient gets a glucometer (with ``records`` readings already in memory, read over RACP)
and a blood-pressure monitor; with ``interval_s`` > 0 every device takes a new measurement
that often and advertises it. Values are plausible, not physiological scenarios (see
``firmware_sim.patients`` for those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import (
    BloodPressureMonitor,
    Glucometer,
    PulseOximeter,
    SimulatedPeripheral,
    Thermometer,
    WeightScale,
)

__all__ = ["BleDemo", "DemoDevice", "ble_demo_devices", "main"]

log = logging.getLogger(__name__)

_CLASSES: dict[str, type[SimulatedPeripheral]] = {
    "glucometer": Glucometer, "scale": WeightScale, "bp": BloodPressureMonitor,
    "oximeter": PulseOximeter, "thermometer": Thermometer}
_SERVICE = {"glucometer": 0x1808, "scale": 0x181D, "bp": 0x1810, "oximeter": 0x1822,
            "thermometer": 0x1809}


def _naive_utc() -> datetime:
    """Device clocks show UTC wall time (``devices_config`` says tz = "UTC")."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """One simulated device: its Vigie id, its owner, its profile and radio address."""

    device_id: str
    patient_id: str
    profile: str  # glucometer, scale, bp, oximeter, thermometer
    address: str


def ble_demo_devices(patients: Sequence[str],
                     profiles: Sequence[str] = ("glucometer", "bp")) -> list[DemoDevice]:
    """Devices for ``patients``: one of each profile per patient, with distinct addresses."""
    devices = []
    for i, patient in enumerate(patients):
        for profile in profiles:
            service = _SERVICE[profile]
            address = f"C0:00:{i >> 8:02X}:{i & 0xFF:02X}:{service >> 8:02X}:{service & 0xFF:02X}"
            devices.append(DemoDevice(f"ble-{profile}-{patient}", patient, profile, address))
    return devices


class BleDemo:
    """The simulated link with the peripherals of ``devices``; an async context manager."""

    def __init__(self, devices: Sequence[DemoDevice], *, port: int = 0, records: int = 0,
                 interval_s: float = 0.0, seed: int = 1) -> None:
        self.devices = list(devices)
        self.records = records
        self.interval_s = interval_s
        self.link = SimulatedLink(port=port)
        self.peripherals: dict[str, SimulatedPeripheral] = {}
        self._random = random.Random(seed)
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.link.start()
        try:
            for device in self.devices:
                peripheral = _CLASSES[device.profile](f"Vigie {device.profile}", device.address,
                                                      clock=_naive_utc)
                self.peripherals[device.device_id] = await self.link.add(peripheral)
                self._history(peripheral)
            if self.interval_s > 0:
                self._ticker = asyncio.create_task(self._measure_forever(), name="ble-demo")
        except BaseException:
            await self.link.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.link.aclose()

    @property
    def transport(self) -> str:
        return self.link.hci_transport

    def source_config(self, name: str = "ble", keystore: Path | str | None = None
                      ) -> dict[str, Any]:
        """The ``[[sources]]`` entry a gateway needs to read these devices."""
        config: dict[str, Any] = {
            "type": "ble", "name": name, "transport": self.transport,
            "devices": [{"address": d.address, "device": d.device_id, "profile": d.profile}
                        for d in self.devices]}
        if keystore is not None:
            config["keystore"] = str(keystore)
        return config

    def devices_config(self) -> list[dict[str, str]]:
        """The ``[[devices]]`` entries attributing each device to its patient."""
        return [{"id": d.device_id, "patient": d.patient_id, "tz": "UTC"} for d in self.devices]

    def _history(self, peripheral: SimulatedPeripheral) -> None:
        """Glucometers start with ``records`` readings in memory, one every 8 hours."""
        if not isinstance(peripheral, Glucometer) or self.records <= 0:
            return
        now = _naive_utc()
        for i in range(self.records):
            at = now - timedelta(hours=8 * (self.records - i))
            peripheral.measure(self._random.uniform(80, 180), at=at, silent=True)
        peripheral.wake()

    async def _measure_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for peripheral in self.peripherals.values():
                self.measure(peripheral)

    def measure(self, peripheral: SimulatedPeripheral) -> None:
        """One plausible measurement, which makes the device advertise."""
        r = self._random
        if isinstance(peripheral, Glucometer):
            peripheral.measure(r.uniform(80, 180))
        elif isinstance(peripheral, WeightScale):
            peripheral.measure(r.uniform(60, 90), user_id=1)
        elif isinstance(peripheral, BloodPressureMonitor):
            peripheral.measure(r.uniform(110, 150), r.uniform(65, 90), pulse=r.uniform(55, 90))
        elif isinstance(peripheral, PulseOximeter):
            peripheral.measure(r.uniform(93, 99), r.uniform(55, 90))
        elif isinstance(peripheral, Thermometer):
            peripheral.measure(r.uniform(36.2, 37.6))


async def _serve(args: argparse.Namespace) -> None:
    devices = ble_demo_devices(args.patient or ["p-001"], tuple(args.profile or
                                                                ("glucometer", "bp")))
    async with BleDemo(devices, port=args.port, records=args.records,
                       interval_s=args.interval) as demo:
        print(json.dumps({"transport": demo.transport, "source": demo.source_config(),
                          "devices": demo.devices_config()}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--patient", action="append", help="patient id (repeatable)")
    parser.add_argument("--profile", action="append", choices=sorted(_CLASSES),
                        help="device profiles per patient (repeatable; glucometer and bp)")
    parser.add_argument("--records", type=int, default=20, help="glucometer memory at start")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between new measurements (0: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
