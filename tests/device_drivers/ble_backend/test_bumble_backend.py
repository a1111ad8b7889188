"""bleak on the bumble backend against simulated peripherals on a bumble link.

Integration tier: the simulator's virtual controllers and the gateway's bumble
host talk real HCI over loopback TCP, so HCI, L2CAP, ATT, GATT and SMP all run.
Bytes are checked against hand-written expectations from the GATT specs, never
through the project's codecs.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from device_drivers.ble.bumble_backend import BumbleHost, BumbleHostConfig, BumbleTimeoutError
from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import (
    BloodPressureMonitor,
    Glucometer,
    Quirks,
    SimulatedPeripheral,
    Thermometer,
    WeightScale,
)

pytestmark = pytest.mark.timeout(30)


def sig(uuid16: int) -> str:
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


GLUCOSE, WEIGHT, BP, THERMO = sig(0x1808), sig(0x181D), sig(0x1810), sig(0x1809)
GLUCOSE_MEASUREMENT, RACP = sig(0x2A18), sig(0x2A52)
WEIGHT_MEASUREMENT, BATTERY_LEVEL = sig(0x2A9D), sig(0x2A19)

NOW = datetime(2026, 3, 14, 9, 26, 53)
NOW_BYTES = bytes.fromhex("ea07030e091a35")  # Date Time: 2026-03-14 09:26:53

GLU_ADDR, SCALE_ADDR, BP_ADDR, THERMO_ADDR = (
    "C0:00:00:00:18:08",
    "C0:00:00:00:18:1D",
    "C0:00:00:00:18:10",
    "C0:00:00:00:18:09",
)


def clock() -> datetime:
    return NOW


def run(scenario: Callable[[], Awaitable[None]], limit: float = 25.0) -> None:
    """Run one scenario on a fresh event loop, bounded in time."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), limit)

    asyncio.run(bounded())


@asynccontextmanager
async def gateway(
    sim: SimulatedLink, keystore: Path | None = None
) -> AsyncIterator[tuple[type[Any], type[Any]]]:
    """A bumble host on the simulator's HCI transport; yields (scanner, client) classes."""
    config = BumbleHostConfig(sim.hci_transport, keystore_path=keystore)
    async with BumbleHost(config) as host:
        yield host.backends()


async def find(address: str, scanner: type[Any], timeout: float = 5.0) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout, backend=scanner)
    assert device is not None, f"{address} not advertising"
    return device


def glucose_bytes(sequence: int, mg_dl: int) -> bytes:
    """GLS measurement, concentration in kg/L: mantissa = mg/dL, exponent -5 (0xB)."""
    return (
        bytes([0x02])
        + struct.pack("<H", sequence)
        + NOW_BYTES
        + struct.pack("<H", 0xB000 | mg_dl)
        + bytes([0x11])  # capillary whole blood, finger
    )


class Collector:
    """Notification sink keyed by characteristic UUID, with a RACP-response event."""

    def __init__(self) -> None:
        self.values: dict[str, list[bytes]] = {}
        self.racp_done = asyncio.Event()
        self.measured = asyncio.Event()

    def __call__(self, characteristic: Any, data: bytearray) -> None:
        self.values.setdefault(characteristic.uuid, []).append(bytes(data))
        if characteristic.uuid == RACP:
            self.racp_done.set()
        else:
            self.measured.set()

    def sequences(self) -> list[int]:
        return [struct.unpack_from("<H", v, 1)[0] for v in self.values.get(GLUCOSE_MEASUREMENT, [])]

    async def racp(self, client: BleakClient, request: bytes) -> bytes:
        self.racp_done.clear()
        await client.write_gatt_char(RACP, request, response=True)
        await asyncio.wait_for(self.racp_done.wait(), 5.0)
        return self.values[RACP][-1]


async def subscribe_glucose(client: BleakClient, sink: Collector) -> None:
    await client.start_notify(GLUCOSE_MEASUREMENT, sink)
    await client.start_notify(RACP, sink)


def glucometer(**quirks: Any) -> Glucometer:
    return Glucometer("Vigie Glucometer", GLU_ADDR, clock=clock, quirks=Quirks(**quirks))


async def add_all(sim: SimulatedLink, *peripherals: SimulatedPeripheral) -> None:
    for peripheral in peripherals:
        await sim.add(peripheral)


# -- discovery ---------------------------------------------------------------------


def test_discovers_only_awake_devices_of_the_wanted_services() -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu, scale = glucometer(), WeightScale("Vigie Scale", SCALE_ADDR, clock=clock)
            bp = BloodPressureMonitor("Vigie BP", BP_ADDR, clock=clock)
            quiet = Thermometer("Vigie Thermometer", THERMO_ADDR, clock=clock)
            await add_all(sim, glu, scale, bp, quiet)
            glu.measure(105)
            scale.measure(72.4)
            bp.measure(120, 80)
            async with gateway(sim) as (scanner, _):
                seen: dict[str, AdvertisementData] = {}
                both = asyncio.Event()

                def on_adv(device: BLEDevice, adv: AdvertisementData) -> None:
                    seen[device.address] = adv
                    if {GLU_ADDR, SCALE_ADDR} <= seen.keys():
                        both.set()

                async with BleakScanner(on_adv, [GLUCOSE, WEIGHT], backend=scanner):
                    await asyncio.wait_for(both.wait(), 5.0)
                    await asyncio.sleep(0.3)  # BP advertises too, but is filtered out
                assert set(seen) == {GLU_ADDR, SCALE_ADDR}
                adv = seen[GLU_ADDR]
                assert adv.local_name == "Vigie Glucometer"
                assert adv.service_uuids == [GLUCOSE]
                assert adv.service_data == {sig(0x180F): bytes([87])}
                assert adv.manufacturer_data == {0xFFFF: b"VG"}
                assert isinstance(adv.rssi, int) and -127 <= adv.rssi <= 20

                everything = await BleakScanner.discover(0.4, backend=scanner)
                assert THERMO_ADDR not in {d.address for d in everything}

    run(scenario)


def test_connecting_to_an_absent_address_raises_device_not_found() -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim, gateway(sim) as (_, client_cls):
            client = BleakClient("C0:00:00:00:99:99", backend=client_cls, timeout=0.5)
            with pytest.raises(BleakDeviceNotFoundError):
                await client.connect()

    run(scenario)


# -- glucometer: pairing, RACP ------------------------------------------------------


def test_glucometer_racp_needs_a_bond_then_reports_records_from_n(tmp_path: Path) -> None:
    keystore = tmp_path / "bonds.json"

    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer())
            for mg_dl in (101, 102, 103, 104, 105):
                glu.measure(mg_dl, silent=True)
            glu.wake()
            async with gateway(sim, keystore) as (scanner, client_cls):
                device = await find(GLU_ADDR, scanner)
                async with BleakClient(device, backend=client_cls, timeout=5.0) as client:
                    sink = Collector()
                    await subscribe_glucose(client, sink)
                    with pytest.raises(BleakGATTProtocolError) as refused:
                        await client.write_gatt_char(RACP, b"\x01\x01", response=True)
                    assert refused.value.code == 0x0F  # Insufficient Encryption

                    await client.pair()
                    assert await sink.racp(client, b"\x04\x01") == b"\x05\x00\x05\x00"
                    assert await sink.racp(client, b"\x01\x03\x01\x03\x00") == b"\x06\x00\x01\x01"
                    assert sink.values[GLUCOSE_MEASUREMENT] == [
                        glucose_bytes(3, 103),
                        glucose_bytes(4, 104),
                        glucose_bytes(5, 105),
                    ]
                    assert await sink.racp(client, b"\x01\x03\x01\x09\x00") == b"\x06\x00\x01\x06"
                    assert client.mtu_size == 247
        bonds = json.loads(keystore.read_text())
        assert [list(peers) for peers in bonds.values()] == [[GLU_ADDR]]

    run(scenario)


def test_bond_survives_a_gateway_restart(tmp_path: Path) -> None:
    keystore = tmp_path / "bonds.json"

    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer())
            glu.measure(110)
            async with gateway(sim, keystore) as (scanner, client_cls):
                device = await find(GLU_ADDR, scanner)
                async with BleakClient(device, backend=client_cls, timeout=5.0) as client:
                    await client.pair()
            assert glu.pairings == 1

            glu.wake()  # the patient presses the button after the gateway rebooted
            async with gateway(sim, keystore) as (scanner, client_cls):
                device = await find(GLU_ADDR, scanner)
                async with BleakClient(device, backend=client_cls, timeout=5.0) as client:
                    sink = Collector()
                    await subscribe_glucose(client, sink)
                    assert await sink.racp(client, b"\x01\x01") == b"\x06\x00\x01\x01"
                    assert sink.values[GLUCOSE_MEASUREMENT] == [glucose_bytes(1, 110)]
            assert glu.pairings == 1  # the stored bond was used, no second pairing

    run(scenario)


def test_link_dropped_mid_racp_transfer_resumes_without_gaps_or_duplicates(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer(disconnect_mid_racp_after=3))
            for mg_dl in range(101, 109):
                glu.measure(mg_dl, silent=True)
            glu.wake()
            async with gateway(sim, tmp_path / "bonds.json") as (scanner, client_cls):
                device = await find(GLU_ADDR, scanner)
                lost = asyncio.Event()
                client = BleakClient(
                    device, lambda _c: lost.set(), backend=client_cls, timeout=5.0, pair=True
                )
                sink = Collector()
                await client.connect()
                await subscribe_glucose(client, sink)
                await client.write_gatt_char(RACP, b"\x01\x01", response=True)
                await asyncio.wait_for(lost.wait(), 5.0)
                assert not client.is_connected
                first = sink.sequences()
                assert first == [1, 2, 3]

                await client.connect()  # the meter advertises again after the drop
                await subscribe_glucose(client, sink)
                resume = struct.pack("<BBBH", 0x01, 0x03, 0x01, first[-1] + 1)
                assert await sink.racp(client, resume) == b"\x06\x00\x01\x01"
                await client.disconnect()
            assert sink.sequences() == list(range(1, 9))
            assert sink.values[GLUCOSE_MEASUREMENT] == [
                glucose_bytes(seq, 100 + seq) for seq in range(1, 9)
            ]

    run(scenario)


def test_racp_checks_cccds_refuses_overlap_and_aborts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = Glucometer("Vigie Glucometer", GLU_ADDR, clock=clock, record_gap=0.05)
            await sim.add(glu)
            for mg_dl in range(101, 109):
                glu.measure(mg_dl, silent=True)
            glu.wake()
            async with gateway(sim, tmp_path / "bonds.json") as (scanner, client_cls):
                device = await find(GLU_ADDR, scanner)
                async with BleakClient(
                    device, backend=client_cls, timeout=5.0, pair=True
                ) as client:
                    sink = Collector()
                    await client.start_notify(RACP, sink)
                    with pytest.raises(BleakGATTProtocolError) as refused:
                        await client.write_gatt_char(RACP, b"\x01\x01", response=True)
                    assert refused.value.code == 0x81  # measurement CCCD not configured

                    await client.start_notify(GLUCOSE_MEASUREMENT, sink)
                    await client.write_gatt_char(RACP, b"\x01\x01", response=True)
                    await asyncio.wait_for(sink.measured.wait(), 5.0)
                    with pytest.raises(BleakGATTProtocolError) as busy:
                        await client.write_gatt_char(RACP, b"\x04\x01", response=True)
                    assert busy.value.code == 0x80  # procedure already in progress

                    assert await sink.racp(client, b"\x03\x00") == b"\x06\x00\x03\x01"
                    received = len(sink.values[GLUCOSE_MEASUREMENT])
                    await asyncio.sleep(0.2)  # four record gaps: nothing more may come
                    assert len(sink.values[GLUCOSE_MEASUREMENT]) == received < 8
                    assert sink.values[RACP] == [b"\x06\x00\x03\x01"]

    run(scenario)


# -- indicating devices, DIS, battery -------------------------------------------------


def test_scale_indicates_its_measurement_and_device_information_reads() -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            scale = await sim.add(WeightScale("Vigie Scale", SCALE_ADDR, clock=clock))
            async with gateway(sim) as (scanner, client_cls):
                assert (
                    await BleakScanner.find_device_by_address(SCALE_ADDR, 0.3, backend=scanner)
                    is None
                )  # quiet until someone steps on it
                scale.measure(72.4, user_id=2)
                device = await find(SCALE_ADDR, scanner)
                async with BleakClient(device, backend=client_cls, timeout=5.0) as client:
                    got: asyncio.Queue[bytes] = asyncio.Queue()
                    await client.start_notify(
                        WEIGHT_MEASUREMENT, lambda _c, data: got.put_nowait(bytes(data))
                    )
                    # flags: time stamp + user id; 72.4 kg / 0.005 = 14480 = 0x3890
                    expected = bytes([0x06]) + b"\x90\x38" + NOW_BYTES + bytes([2])
                    assert await asyncio.wait_for(got.get(), 5.0) == expected
                    await client.stop_notify(WEIGHT_MEASUREMENT)
                    assert await client.read_gatt_char(sig(0x2A29)) == b"Vigie Simulated Devices"
                    assert await client.read_gatt_char(sig(0x2A24)) == b"SIM-WS1"
                    assert await client.read_gatt_char(sig(0x2A25)) == b"SIM-0001"
                    assert await client.read_gatt_char(BATTERY_LEVEL) == bytes([87])
                    measurement = client.services.get_characteristic(WEIGHT_MEASUREMENT)
                    assert measurement is not None and measurement.properties == ["indicate"]
            assert scale.pending == [] and scale.delivered == [expected]

    run(scenario)


# -- a device that never answers ------------------------------------------------------


def test_connect_to_a_device_that_never_answers_times_out_and_host_stays_usable() -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            mute = Thermometer(
                "Mute Thermometer", THERMO_ADDR, clock=clock, quirks=Quirks(never_answers=True)
            )
            scale = WeightScale("Vigie Scale", SCALE_ADDR, clock=clock)
            await add_all(sim, mute, scale)
            mute.measure(37.2)
            async with gateway(sim) as (scanner, client_cls):
                device = await find(THERMO_ADDR, scanner)
                client = BleakClient(device, backend=client_cls, timeout=1.0)
                started = time.monotonic()
                with pytest.raises(BleakError) as failure:
                    await client.connect()
                assert time.monotonic() - started < 3.0
                assert isinstance(failure.value, BumbleTimeoutError)
                assert isinstance(failure.value, TimeoutError)
                assert not client.is_connected

                scale.measure(80.0)
                other = await find(SCALE_ADDR, scanner)
                async with BleakClient(other, backend=client_cls, timeout=5.0) as ok:
                    assert ok.is_connected

    run(scenario)
