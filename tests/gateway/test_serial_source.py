"""SerialSource against simulated instruments on a pty, through a real Intake and Outbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.serial import (
    Faults,
    OneTouchPty,
    PocTest,
    PtyDevice,
    Timers,
    UltraEasyMeterSim,
    WardAnalyzerSim,
)
from gateway.daemon import make_source
from gateway.errors import ConfigError
from gateway.intake import DeviceProfile, Intake
from gateway.outbox import Outbox
from gateway.sources.serial import SerialSource, make_driver
from vigie.contract import Kind, Observation, Reading

pytestmark = pytest.mark.timeout(30)

FAST = Timers(reply=0.5, busy=0.2, contention=0.1, retry=0.2)
START = datetime(2024, 3, 1, 10, 0, 0)
ROUND = [("A123", PocTest("INR", "2.6", "INR", "H", "2.0-3.0")),
         ("A123", PocTest("HBA1C", "53", "mmol/mol", "H")),
         ("B456", PocTest("NTPROBNP", "1850", "pg/mL", "H")),
         ("Z999", PocTest("CRP", "12", "mg/L"))]
PROFILE = DeviceProfile("poc-1", patients={"A123": "p-0101", "B456": "p-0102"})


def _ward(script: Sequence[tuple[str, PocTest]] = ROUND, **kw: Any) -> PtyDevice:
    return PtyDevice(WardAnalyzerSim(script, interval=0.05, start=START), timers=FAST, **kw)


def _intake(tmp_path: Path, capacity: int = 1000, cls: type[Intake] = Intake) -> Intake:
    return cls("gw-test", Outbox(tmp_path / "outbox.sqlite3", capacity), {"poc-1": PROFILE})


def _source(port: str, **extra: Any) -> SerialSource:
    options = {"type": "serial", "name": "poc", "port": port, "family": "astm-poc",
               "device": "poc-1", "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
               "read_timeout_s": 0.02, **extra}
    source = make_source(options)
    assert isinstance(source, SerialSource)
    return source


def _bodies(intake: Intake) -> list[dict[str, Any]]:
    return [p.body for p in intake.outbox.pending(1000)]


@contextlib.contextmanager
def running(source: SerialSource, intake: Intake) -> Iterator[None]:
    """The source's ``run`` in an event loop on a thread, as the daemon runs it; cancelled
    (and checked not to have failed) on exit."""
    failure: list[BaseException] = []
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["loop"], holder["task"] = asyncio.get_running_loop(), asyncio.current_task()
        ready.set()
        try:
            await source.run(intake)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield
    finally:
        holder["loop"].call_soon_threadsafe(holder["task"].cancel)
        thread.join(10)
    assert not thread.is_alive(), "the source stops promptly when cancelled"
    assert not failure, failure


def wait_for(predicate: Callable[[], object], source: SerialSource, timeout: float = 10.0,
             ) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; serial state {source.state!r}"
        time.sleep(0.02)


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A stable port name re-pointed at each new pty, as udev's /dev/serial/by-id does."""
    path = tmp_path / "ttyPOC"

    def point(target: str) -> str:
        tmp = tmp_path / "ttyPOC.new"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, path)
        return str(path)

    yield point


def test_results_are_attributed_by_patient_ref_and_unknown_stay_unattributed(
        tmp_path: Path) -> None:
    intake = _intake(tmp_path)
    with _ward() as device:
        source = _source(device.path)
        with running(source, intake):
            wait_for(lambda: intake.outbox.depth >= 4, source)
    got = [(b["kind"], b["value"], b["patient"]) for b in _bodies(intake)]
    assert got == [("inr", 2.6, "p-0101"), ("hba1c", pytest.approx(7.00044), "p-0101"),
                   ("nt_probnp", 1850.0, "p-0102"), ("crp", 12.0, None)]
    assert {b["device"] for b in _bodies(intake)} == {"poc-1"}
    assert all(b["time_trusted"] for b in _bodies(intake))


class _OrderIntake(Intake):
    """Records how many messages the instrument saw acknowledged when each commit happens."""

    device: PtyDevice | None = None
    acked_at_commit: list[int]

    def take(self, device_id: str, observations: Sequence[Observation],
             cursor: tuple[str, str] | None = None) -> list[Reading]:
        assert self.device is not None
        self.acked_at_commit.append(len(self.device.sender.delivered))
        return super().take(device_id, observations, cursor)


def test_each_result_is_committed_before_its_terminator_frame_is_acknowledged(
        tmp_path: Path) -> None:
    intake = _intake(tmp_path, cls=_OrderIntake)
    assert isinstance(intake, _OrderIntake)
    intake.acked_at_commit = []
    with _ward() as device:
        intake.device = device
        source = _source(device.path)
        with running(source, intake):
            wait_for(lambda: len(device.sender.delivered) >= 4, source)
    # when message n is committed, the instrument has seen only the n-1 before it ACKed
    assert intake.acked_at_commit == [0, 1, 2, 3]


def test_unplug_mid_transfer_keeps_nothing_and_the_source_recovers(
        tmp_path: Path, link: Callable[[str], str]) -> None:
    intake = _intake(tmp_path)
    first = _ward(faults=Faults(unplug_after=2))  # cable pulled after H and P frames
    source = _source(link(first.path))
    with running(source, intake), first:
        wait_for(lambda: source.state.startswith("device gone"), source)
        time.sleep(0.3)  # the source keeps retrying the missing port meanwhile
        assert intake.outbox.depth == 0, "half a message never reaches the outbox"
        assert source.session is not None and source.session.disconnects == 1
        with _ward() as second:  # plugged back: same port name, the instrument sends again
            link(second.path)
            wait_for(lambda: intake.outbox.depth >= 4, source)
    assert [b["kind"] for b in _bodies(intake)] == ["inr", "hba1c", "nt_probnp", "crp"]
    assert source.session.connects == 2


def test_full_outbox_refuses_the_result_and_takes_it_later(tmp_path: Path) -> None:
    intake = _intake(tmp_path, capacity=1)
    intake.take("filler", [Observation(Kind.GLUCOSE, 100.0, "mg/dL", START)])
    with _ward(ROUND[:1]) as device:
        source = _source(device.path, retry_when_full_s=0.3)
        with running(source, intake):
            wait_for(lambda: intake.refused >= 1, source)
            assert device.sender.delivered == [], "the instrument was not told it was taken"
            assert source.driver is not None and source.driver.refusals >= 1
            filler = [p.row for p in intake.outbox.pending(10)]
            intake.outbox.remove(filler)  # the publisher got its PUBACK: room again
            wait_for(lambda: len(device.sender.delivered) == 1, source)
    assert [(b["kind"], b["patient"]) for b in _bodies(intake)] == [("inr", "p-0101")]
    assert device.sessions == 1 and device.sender.frames_sent > 5, "the message was resent"


def test_onetouch_meter_memory_is_dumped_into_the_outbox(tmp_path: Path) -> None:
    intake = Intake("gw-test", Outbox(tmp_path / "o.sqlite3"),
                    {"ote-1": DeviceProfile("ote-1", patient_id="p-0201")})
    meter = UltraEasyMeterSim([(datetime(2024, 3, 1, 7, 30), 104),
                               (datetime(2024, 3, 1, 12, 5), 163)])
    with OneTouchPty(meter) as pty:
        source = _source(pty.path, family="onetouch-ultraeasy", device="ote-1")
        with running(source, intake):
            wait_for(lambda: intake.outbox.depth >= 2, source)
    assert [(b["kind"], b["value"], b["patient"], b["device_seq"]) for b in _bodies(intake)] == [
        ("glucose", 104.0, "p-0201", 0), ("glucose", 163.0, "p-0201", 1)]


def test_code_table_override_maps_a_local_code() -> None:
    driver = make_driver("astm-poc", {"XPBNP": {"kind": "nt_probnp", "units": {"ng/L": 1.0}}})
    from device_drivers.astm import AstmDriver

    assert isinstance(driver, AstmDriver)
    assert driver.table["XPBNP"].kind is Kind.NT_PROBNP
    assert driver.table["INR"].kind is Kind.INR, "the family table is kept"


@pytest.mark.parametrize("options, message", [
    ({"family": "astm-lab"}, "unknown serial family"),
    ({"parity": "X"}, "bad line setting"),
    ({"stopbits": 3}, "stopbits"),
    ({"port": ""}, "needs 'port'"),
    ({"device": "bad id!"}, "'device'"),
    ({"family": "onetouch-ultraeasy", "codes": {"X": {"kind": "crp"}}}, "no test codes"),
    ({"codes": {"X": {"kind": "nonsense"}}}, "bad 'codes'"),
])
def test_configuration_errors_are_reported(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _source(**{"port": "/dev/ttyUSB0", **options})
