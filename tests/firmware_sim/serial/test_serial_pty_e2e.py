"""End to end: simulated instruments on a pty master, pyserial session on the slave path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from device_drivers.astm import GLUCOMETER_CODES, POC_ANALYZER_CODES, AstmDriver
from device_drivers.serial_session import SerialSession
from firmware_sim.serial import Faults, GlucometerSim, PocAnalyzerSim, PocTest, PtyDevice, Timers
from vigie.contract import Kind, Observation

FAST = Timers(reply=0.5, busy=0.2, contention=0.1, retry=0.2)
READINGS = [(datetime(2024, 3, 1, 7, 30), 5.5), (datetime(2024, 3, 1, 12, 5), 9.1),
            (datetime(2024, 3, 1, 19, 45), 4.2)]


def _collect(session: SerialSession, want: int, timeout: float) -> list[Observation]:
    stop = threading.Event()
    got: list[Observation] = []
    for obs in session.observations(stop, timeout=timeout):
        got.append(obs)
        if len(got) >= want:
            stop.set()
    return got


def _session(path: str, driver: AstmDriver, **kw: Any) -> SerialSession:
    return SerialSession(path, driver, read_timeout=0.02, backoff=(0.05, 0.2), **kw)


def _glucometer() -> GlucometerSim:
    return GlucometerSim(READINGS, unit="mmol/L", patient_id="PAT^7")


def test_glucometer_dumps_memory_when_the_session_opens() -> None:
    with PtyDevice(_glucometer(), timers=FAST) as device:
        got = _collect(_session(device.path, AstmDriver(GLUCOMETER_CODES)), 3, 5.0)
    assert [(o.kind, o.value, o.original_value, o.original_unit) for o in got] == [
        (Kind.GLUCOSE, 99.088, 5.5, "mmol/L"), (Kind.GLUCOSE, 163.9456, 9.1, "mmol/L"),
        (Kind.GLUCOSE, 75.6672, 4.2, "mmol/L")]
    assert [o.sequence for o in got] == [1, 2, 3]
    assert [o.device_time for o in got] == [t for t, _ in READINGS]
    assert {o.patient_ref for o in got} == {"PAT^7"}  # escaped by the device (&S&)


def test_poc_analyzer_sends_each_result_when_done() -> None:
    tests = [PocTest("INR", "2.6", "INR", "H", "2.0-3.0"),
             PocTest("HBA1C", "53", "mmol/mol", "H"), PocTest("CRP", "<5", "mg/L")]
    with PtyDevice(PocAnalyzerSim(tests, duration=0.1), timers=FAST) as device:
        got = _collect(_session(device.path, AstmDriver(POC_ANALYZER_CODES)), 3, 5.0)
    assert [o.kind for o in got] == [Kind.INR, Kind.HBA1C, Kind.CRP]
    assert got[0].value == 2.6 and got[0].flags == ("abnormal:H",)
    assert got[1].value == pytest.approx(7.00044)
    assert got[2].value is None and "below_measuring_range" in got[2].flags
    assert [o.extra["specimen_id"] for o in got] == ["S0001", "S0002", "S0003"]


@pytest.mark.parametrize("faults", [Faults(noise=0.4, seed=11), Faults(nak_storm=8)],
                         ids=["line-noise", "nak-storm"])
def test_faulty_line_still_delivers_exact_values(faults: Faults) -> None:
    with PtyDevice(_glucometer(), timers=FAST, faults=faults) as device:
        got = _collect(_session(device.path, AstmDriver(GLUCOMETER_CODES)), 3, 8.0)
    assert [o.original_value for o in got][:3] == [v for _, v in READINGS]


def test_device_silent_mid_transfer_yields_nothing() -> None:
    driver = AstmDriver(GLUCOMETER_CODES, frame_timeout=0.3)
    with PtyDevice(_glucometer(), timers=Timers(reply=30, retry=30),
                   faults=Faults(silent_after=3)) as device:
        got = _collect(_session(device.path, driver), 1, 1.0)
    assert got == []
    assert driver.discarded == 1  # the receiver timer threw the partial message away


def test_unplug_mid_transfer_yields_no_partial_result() -> None:
    states: list[str] = []
    driver = AstmDriver(GLUCOMETER_CODES)
    with PtyDevice(_glucometer(), timers=FAST, faults=Faults(unplug_after=3)) as device:
        session = _session(device.path, driver, on_state=states.append)
        got = _collect(session, 1, 1.5)
    assert got == []
    assert session.disconnects == 1
    assert states[0] == "connected" and states[1].startswith("device gone")
    assert driver.discarded == 1
    assert session.connects == 1  # the path is gone: reopening keeps failing, no crash


def test_port_appears_later_is_retried() -> None:
    attempts: list[str] = []

    def flaky(real: Callable[[str, int, float], Any]) -> Callable[[str, int, float], Any]:
        def opener(url: str, baud: int, timeout: float) -> Any:
            attempts.append(url)
            if len(attempts) < 3:
                raise OSError(2, "No such file or directory")
            return real(url, baud, timeout)
        return opener

    import serial

    def real(url: str, baud: int, timeout: float) -> Any:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout)

    with PtyDevice(_glucometer(), timers=FAST) as device:
        session = _session(device.path, AstmDriver(GLUCOMETER_CODES), opener=flaky(real))
        got = _collect(session, 3, 5.0)
    assert len(attempts) == 3 and len(got) == 3
