"""BleSource with a real Intake and Outbox (SQLite in tmp) against the BLE simulator.

The simulator runs in-process; the source opens it over HCI/TCP on a free port through the
bumble backend, exactly as configured with ``transport = "tcp-client:127.0.0.1:PORT"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device_drivers.ble.session import ClockSample, KnownDevice, Profile
from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import Glucometer
from gateway.errors import ConfigError
from gateway.intake import DeviceProfile, Intake
from gateway.outbox import Outbox
from gateway.sources.ble import BleSource, _IntakeSink
from tests.device_drivers.ble_session.ble_session_kit import GLU_ADDR, naive_utc, run
from vigie.contract import Observation, Reading

pytestmark = pytest.mark.timeout(30)


class CountingIntake(Intake):
    """The real intake, counting what each device offered (taken or refused)."""

    offered: int = 0

    def take(self, device_id: str, observations: Sequence[Observation],
             cursor: tuple[str, str] | None = None) -> list[Reading]:
        self.offered += len(observations)
        return super().take(device_id, observations, cursor)


def make_intake(tmp_path: Path, capacity: int = 10_000) -> CountingIntake:
    outbox = Outbox(tmp_path / "outbox.sqlite3", capacity=capacity)
    return CountingIntake("gw-ble", outbox, {"glu-1": DeviceProfile("glu-1", "p-7")})


def source(sim: SimulatedLink, tmp_path: Path, **extra: Any) -> BleSource:
    return BleSource("ble", {
        "type": "ble", "name": "ble", "transport": sim.hci_transport,
        "keystore": str(tmp_path / "bonds.json"),
        "devices": [{"address": GLU_ADDR, "device": "glu-1", "profile": "glucometer"}],
        "idle_s": 0.4, "connect_timeout_s": 2, "record_timeout_s": 2, "racp_chunk": 10,
        **extra})


@asynccontextmanager
async def running(src: BleSource, intake: Intake) -> AsyncIterator[None]:
    task = asyncio.create_task(src.run(intake))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def glucometer(n: int, record_gap: float = 0.0) -> Glucometer:
    glu = Glucometer("Vigie Glucometer", GLU_ADDR, clock=naive_utc, record_gap=record_gap)
    for i in range(n):
        glu.measure(90 + i, silent=True)
    return glu


def device_sequences(outbox: Outbox) -> list[int]:
    return sorted(int(str(p.body["device_seq"])) for p in outbox.pending(100_000))


def test_records_land_in_the_outbox_once_attributed(tmp_path: Path) -> None:
    intake = make_intake(tmp_path)

    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer(30))
            glu.wake()
            src = source(sim, tmp_path)
            async with running(src, intake):
                await until(lambda: intake.outbox.cursor("ble:glu-1") == "30")
                glu.wake()  # the patient presses the button again: nothing new to read
                assert src.central is not None
                await until(lambda: src.central is not None
                            and src.central.stats.successes[GLU_ADDR] == 2)

    run(scenario)
    assert device_sequences(intake.outbox) == list(range(1, 31))
    assert intake.offered == 30
    first = intake.outbox.pending(1)[0].body
    assert first["patient"] == "p-7" and first["kind"] == "glucose"
    assert first["value"] == pytest.approx(90.0) and first["time_trusted"] is True


def test_a_restarted_source_resumes_from_the_durable_cursor(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer(25))
            glu.wake()
            first = make_intake(tmp_path)
            async with running(source(sim, tmp_path), first):
                await until(lambda: first.outbox.cursor("ble:glu-1") == "25")
            first.outbox.close()

            for i in range(10):  # measured while the gateway was down
                glu.measure(150 + i, silent=True)
            glu.wake()
            again = make_intake(tmp_path)  # same outbox file, new process state
            async with running(source(sim, tmp_path), again):
                await until(lambda: again.outbox.cursor("ble:glu-1") == "35")
            assert again.offered == 10  # only records 26-35 were asked for
            assert device_sequences(again.outbox) == list(range(1, 36))
            assert glu.pairings == 1  # the bond in the keystore was reused

    run(scenario)


def test_outbox_full_aborts_the_transfer_and_resumes_later(tmp_path: Path) -> None:
    intake = make_intake(tmp_path, capacity=20)

    async def scenario() -> None:
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer(50, record_gap=0.01))
            glu.wake()
            src = source(sim, tmp_path)
            async with running(src, intake):
                await until(lambda: intake.refused > 0)
                await until(lambda: src.central is not None
                            and sum(src.central.stats.failures.values()) == 1)
                assert intake.outbox.cursor("ble:glu-1") == "20"
                await asyncio.sleep(0.3)
                assert intake.refused == 10  # aborted: the meter stopped sending
                # the publisher drains the outbox; the patient measures again later
                intake.outbox.remove(p.row for p in intake.outbox.pending(100))
                glu.wake()
                await until(lambda: intake.outbox.cursor("ble:glu-1") == "40")
                intake.outbox.remove(p.row for p in intake.outbox.pending(100))
                glu.wake()
                await until(lambda: intake.outbox.cursor("ble:glu-1") == "50")

    run(scenario)
    assert intake.outbox.taken_count() == 50  # 1-50, each once


def test_measured_clock_offset_replaces_the_configured_one(tmp_path: Path) -> None:
    intake = make_intake(tmp_path)
    src = BleSource("ble", {"devices": []})
    sink = _IntakeSink(src, intake)
    device = KnownDevice(GLU_ADDR, "glu-1", Profile.GLUCOMETER)
    now = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    sample = ClockSample(datetime(2026, 3, 14, 9, 3, 20), now, "2a2b")
    asyncio.run(sink.clock_measured(device, sample))
    assert intake.profile("glu-1").clock_offset_s == 200.0
    assert intake.profile("glu-1").patient_id == "p-7"
    reading = intake.take("glu-1", [Observation("glucose", 100.0, "mg/dL",  # type: ignore[arg-type]
                                                device_time=datetime(2026, 3, 14, 8, 3, 20),
                                                sequence=1)])[0]
    assert reading.measured_at == now - timedelta(hours=1)


@pytest.mark.parametrize("entry", [{"address": GLU_ADDR, "device": "glu-1"},
                                   {"address": GLU_ADDR, "device": "bad id", "profile": "bp"},
                                   {"address": GLU_ADDR, "device": "g", "profile": "cgm"}])
def test_bad_device_entries_are_configuration_errors(entry: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="needs address, device and profile"):
        BleSource("ble", {"devices": [entry]})
