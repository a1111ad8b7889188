"""Device lists from the cloud on the gateway: merged over the TOML, saved, reloaded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.assignments import DeviceAssignments, assignments_path
from gateway.config import load
from gateway.daemon import Gateway
from gateway.intake import DeviceProfile, Intake
from gateway.outbox import Outbox
from vigie.contract import DeviceAssignment, GatewayDevices, Kind, Observation

TOML_DEVICES = {
    "scale-1": DeviceProfile("scale-1", "p-1", tz="Europe/Paris", clock_offset_s=12.0),
    "scale-2": DeviceProfile("scale-2", None, users={1: "p-5"}),
}


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    outbox = Outbox(tmp_path / "outbox.sqlite3", ballast_bytes=0)
    yield Intake("gw-1", outbox, TOML_DEVICES)
    outbox.close()


def _list(version: int, *devices: DeviceAssignment) -> bytes:
    return GatewayDevices("gw-1", version, devices).encode()


def _assignments(intake: Intake, tmp_path: Path) -> DeviceAssignments:
    return DeviceAssignments("gw-1", TOML_DEVICES, intake,
                             assignments_path(tmp_path / "outbox.sqlite3"))


def test_cloud_list_overrides_the_toml_and_keeps_its_clock_fields(
        intake: Intake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "gateway.assignments")
    dl = _assignments(intake, tmp_path)
    dl.receive(_list(1, DeviceAssignment("scale-1", "p-2"), DeviceAssignment("dev-9", "p-9")))
    scale = intake.profile("scale-1")
    assert (scale.patient_id, scale.tz, scale.clock_offset_s) == ("p-2", "Europe/Paris", 12.0)
    assert intake.profile("scale-2") == TOML_DEVICES["scale-2"]  # not listed: the TOML's
    assert intake.profile("dev-9") == DeviceProfile("dev-9", "p-9")
    taken = intake.take("dev-9", [Observation(Kind.WEIGHT, 70.0, "kg")])
    assert taken[0].patient_id == "p-9"
    assert "device dev-9 now attributed to patient p-9" in caplog.messages
    assert "device scale-1 now attributed to patient p-2" in caplog.messages
    assert not [m for m in caplog.messages if "scale-2" in m]
    assert assignments_path(tmp_path / "outbox.sqlite3").name == "outbox.devices.json"

    caplog.clear()
    intake.set_clock_offset("scale-1", -30.0)  # measured over Bluetooth meanwhile
    dl.receive(_list(2, DeviceAssignment("scale-1", None, shared=True)))
    assert intake.profile("scale-1").patient_id is None
    assert intake.profile("scale-1").clock_offset_s == -30.0, "a measured offset stays"
    assert intake.profile("dev-9") == DeviceProfile("dev-9")  # unpaired: unknown again
    assert "device scale-1 now shared" in caplog.messages
    assert "device dev-9 now unattributed" in caplog.messages


def test_bad_or_stale_lists_keep_the_previous_one(
        intake: Intake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dl = _assignments(intake, tmp_path)
    dl.receive(_list(5, DeviceAssignment("dev-9", "p-9")))
    saved = dl.path.read_bytes()
    for bad in (b"", b"not json", b'{"v": 1, "gateway": "gw-2", "version": 6, "devices": []}',
                _list(6, DeviceAssignment("dev-9", "p-1", shared=True)),  # both
                _list(4, DeviceAssignment("dev-9", "p-4"))):
        dl.receive(bad)
        assert intake.profile("dev-9").patient_id == "p-9"
        assert dl.path.read_bytes() == saved
    assert any("bad device list" in r.message and r.levelno == logging.ERROR
               for r in caplog.records)
    assert any("ignoring device list version 4" in m for m in caplog.messages)


def test_saved_list_applies_at_the_next_start(intake: Intake, tmp_path: Path) -> None:
    _assignments(intake, tmp_path).receive(_list(3, DeviceAssignment("dev-9", "p-9")))
    assert not list(tmp_path.glob("*.tmp"))
    fresh = Intake("gw-1", intake.outbox, TOML_DEVICES)
    reloaded = DeviceAssignments("gw-1", TOML_DEVICES, fresh, _assignments(intake, tmp_path).path)
    reloaded.load()
    assert fresh.profile("dev-9").patient_id == "p-9"
    assert reloaded.current is not None and reloaded.current.version == 3
    reloaded.receive(_list(2, DeviceAssignment("dev-9", "p-2")))  # older: ignored
    assert fresh.profile("dev-9").patient_id == "p-9"


def test_a_corrupt_saved_list_falls_back_to_the_toml(
        intake: Intake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dl = _assignments(intake, tmp_path)
    dl.path.write_text("{truncated")
    dl.load()
    assert intake.devices == TOML_DEVICES
    assert any("ignoring the saved device list" in m for m in caplog.messages)


def test_daemon_loads_the_saved_list(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text("")
    (tmp_path / "gateway.toml").write_text("""
[gateway]
id = "gw-1"
[[devices]]
id = "dev-9"
tz = "Europe/Paris"
[[sources]]
type = "replay"
path = "s.jsonl"
""")
    (tmp_path / "outbox.devices.json").write_bytes(_list(1, DeviceAssignment("dev-9", "p-9")))
    gateway = Gateway(load(tmp_path / "gateway.toml"))
    try:
        profile = gateway.intake.profile("dev-9")
        assert (profile.patient_id, profile.tz) == ("p-9", "Europe/Paris")
    finally:
        gateway.outbox.close()
