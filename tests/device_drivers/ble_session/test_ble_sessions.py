"""BLE sessions end to end: bleak (bumble backend) against the simulator, in-process.

The gateway host and the simulated peripherals talk real HCI over loopback TCP (free port),
so connect, SMP bonding, GATT discovery, notifications, indications and RACP all run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from device_drivers.ble.session import (
    BleCentral,
    ErrorKind,
    KnownDevice,
    Profile,
)
from firmware_sim.ble.link import SimulatedLink
from firmware_sim.ble.peripherals import Glucometer, Quirks, Thermometer, WeightScale
from tests.device_drivers.ble_session.ble_session_kit import (
    FAST,
    GLU_ADDR,
    SCALE_ADDR,
    THERMO_ADDR,
    ClockThermometer,
    MemorySink,
    central_for,
    gateway_host,
    naive_utc,
    run,
    running,
)

pytestmark = pytest.mark.timeout(30)

GLU = KnownDevice(GLU_ADDR, "glu-1", Profile.GLUCOMETER)
SCALE = KnownDevice(SCALE_ADDR, "scale-1", Profile.SCALE)
THERMO = KnownDevice(THERMO_ADDR, "thermo-1", Profile.THERMOMETER)


def glucometer(quirks: Quirks | None = None) -> Glucometer:
    return Glucometer("Vigie Glucometer", GLU_ADDR, clock=naive_utc, record_gap=0.0,
                      quirks=quirks)


async def fill(glu: Glucometer, n: int) -> None:
    for i in range(n):
        glu.measure(80 + i % 100, silent=True)
    glu.wake()


def test_racp_sync_reads_every_record_after_the_cursor_once(tmp_path: Path) -> None:
    async def scenario() -> MemorySink:
        sink = MemorySink(cursors={"glu-1": 10})  # the gateway already holds 1-10
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer())
            await fill(glu, 120)
            async with gateway_host(sim, tmp_path / "bonds.json") as host:
                central = central_for(host, [GLU], sink)
                async with running(central):
                    await sink.until(lambda: sink.cursors["glu-1"] == 120)
            assert glu.pairings == 1  # RACP needs a bond: the session paired
            assert central.stats.failures == {}
        return sink

    sink = run(scenario)
    assert sink.sequences("glu-1") == list(range(11, 121))
    assert len(sink.delivered) >= 4  # committed in chunks, cursor with each
    first = sink.observations("glu-1")[0]
    assert first.kind == "glucose" and first.value == pytest.approx(90.0)
    assert first.device_time is not None and first.flags == ()


def test_link_dropped_mid_racp_resumes_from_the_committed_cursor(tmp_path: Path) -> None:
    async def scenario() -> tuple[MemorySink, BleCentral]:
        sink = MemorySink()
        async with SimulatedLink() as sim:
            glu = await sim.add(glucometer(Quirks(disconnect_mid_racp_after=33)))
            await fill(glu, 40)
            async with gateway_host(sim) as host:
                central = central_for(host, [GLU], sink)
                async with running(central):
                    await sink.until(lambda: sink.cursors.get("glu-1") == 40)
        return sink, central

    sink, central = run(scenario)
    assert sink.sequences("glu-1") == list(range(1, 41))  # no gap, no duplicate
    assert central.stats.failures == {ErrorKind.GONE: 1}
    assert central.stats.attempts[GLU_ADDR] == 2
    # the first session committed one chunk (25) and the 8 received before the drop
    assert [d.last_sequence for d in sink.delivered] == [25, 33, 40]


def test_device_that_never_answers_times_out_backs_off_and_others_are_read() -> None:
    async def scenario() -> tuple[MemorySink, BleCentral, float]:
        sink = MemorySink()
        async with SimulatedLink() as sim:
            mute = Thermometer("Mute Thermometer", THERMO_ADDR, clock=naive_utc,
                               quirks=Quirks(never_answers=True))
            scale = WeightScale("Vigie Scale", SCALE_ADDR, clock=naive_utc)
            await sim.add(mute)
            await sim.add(scale)
            mute.measure(37.2)
            async with gateway_host(sim) as host:
                settings = replace(FAST, session=replace(FAST.session, connect_timeout_s=0.5))
                central = central_for(host, [THERMO, SCALE], sink, settings)
                async with running(central) as task:
                    await asyncio.sleep(1.0)  # the mute device is tried, and times out
                    scale.measure(72.4, user_id=1)
                    await sink.until(lambda: len(sink.observations("scale-1")) == 1)
                    await asyncio.sleep(1.5)
                    started = time.monotonic()
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    stop_s = time.monotonic() - started
        return sink, central, stop_s

    sink, central, stop_s = run(scenario)
    assert central.stats.failures[ErrorKind.TIMEOUT] >= 1
    # connect 0.5 s + guard, then 1 s, then 2 s of backoff: at most 3 tries in ~3.5 s
    assert 1 <= central.stats.attempts[THERMO_ADDR] <= 3
    assert sink.observations("thermo-1") == []
    assert stop_s < 3.0


def test_scanner_watchdog_restarts_a_silent_scanner() -> None:
    async def scenario() -> tuple[MemorySink, BleCentral]:
        sink = MemorySink()
        async with SimulatedLink() as sim:
            scale = await sim.add(WeightScale("Vigie Scale", SCALE_ADDR, clock=naive_utc))
            async with gateway_host(sim) as host:
                settings = replace(FAST, scanner_silence_s=0.6)
                central = central_for(host, [SCALE], sink, settings)
                async with running(central):
                    while central.stats.scanner_starts == 0:
                        await asyncio.sleep(0.02)
                    # The controller stops scanning behind bleak's back (as a BlueZ adapter
                    # does after a reset): the scanner believes it runs but hears nothing.
                    await (await host.device()).stop_scanning()
                    scale.measure(81.0, user_id=2)
                    await sink.until(lambda: bool(sink.observations("scale-1")), 5.0)
        return sink, central

    sink, central = run(scenario)
    assert central.stats.scanner_restarts >= 1
    assert central.stats.scanner_starts >= 2
    assert [o.value for o in sink.observations("scale-1")] == [pytest.approx(81.0)]


def test_multi_user_scale_keeps_the_user_index_of_each_measurement() -> None:
    async def scenario() -> MemorySink:
        sink = MemorySink()
        async with SimulatedLink() as sim:
            scale = await sim.add(WeightScale("Vigie Scale", SCALE_ADDR, clock=naive_utc))
            scale.measure(72.4, user_id=1)
            scale.measure(95.0, user_id=2)
            scale.measure(60.0, user_id=255)  # unknown user
            async with gateway_host(sim) as host, running(central_for(host, [SCALE], sink)):
                await sink.until(lambda: len(sink.observations("scale-1")) == 3)
        return sink

    sink = run(scenario)
    got = sink.observations("scale-1")
    assert [(o.user_index, o.flags) for o in got] == [(1, ()), (2, ()), (None, ("user_unknown",))]
    assert [o.value for o in got] == pytest.approx([72.4, 95.0, 60.0])
    assert all(d.last_sequence is None and not d.from_records for d in sink.delivered)


def test_clock_offset_is_measured_from_the_device_current_time() -> None:
    async def scenario() -> MemorySink:
        sink = MemorySink()
        async with SimulatedLink() as sim:
            thermo = ClockThermometer("Vigie Thermometer", THERMO_ADDR, clock=naive_utc,
                                      quirks=Quirks(clock_offset=timedelta(seconds=125)))
            await sim.add(thermo)
            thermo.measure(37.4)
            async with gateway_host(sim) as host, running(central_for(host, [THERMO], sink)):
                await sink.until(lambda: bool(sink.observations("thermo-1")))
        return sink

    sink = run(scenario)
    assert len(sink.clocks) == 1
    assert sink.clocks[0].offset_s(UTC) in (124.0, 125.0, 126.0)
    assert sink.clocks[0].characteristic.startswith("00002a2b")
    assert sink.observations("thermo-1")[0].value == pytest.approx(37.4)
