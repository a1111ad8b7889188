"""A shared POC analyzer on a pty -> ``vigie gateway run`` (serial source) -> MQTT -> InfluxDB."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.serial import PocTest, PtyDevice, WardAnalyzerSim
from tests.conftest import VIGIE, Cloud, wait_for
from vigie.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROUND = [("EH-001", PocTest("INR", "2.8", "INR", "H", "2.0-3.0")),
         ("EH-001", PocTest("HBA1C", "7.4", "%", "H")),
         ("EH-002", PocTest("NTPROBNP", "2300", "pg/mL", "H")),
         ("EH-002", PocTest("CRP", "18", "mg/L", "H")),
         ("VISITOR-9", PocTest("GLU", "112", "mg/dL"))]


def _config(workdir: Path, svc: Services, port: str) -> Path:
    config = workdir / "gateway.toml"
    config.write_text(f"""
[gateway]
id = "gw-ehpad-s"
site = "ehpad-s"
outbox = "outbox.sqlite3"
drain_timeout_s = 2
[mqtt]
host = "127.0.0.1"
port = {svc.mosquitto.port}
batch_size = 50
keepalive = 2
[[devices]]
id = "poc-ward-1"
patients = {{ "EH-001" = "p-0101", "EH-002" = "p-0102" }}
tz = "Europe/Paris"
[[sources]]
type = "serial"
name = "poc"
port = "{port}"
family = "astm-poc"
device = "poc-ward-1"
baudrate = 9600
parity = "N"
""")
    return config


def _observations(cloud: Cloud, patient: str) -> list[dict[str, Any]]:
    got = cloud.api.get(f"/patients/{patient}/observations",
                        params={"start": "2000-01-01T00:00:00Z"})
    return list(got.json()) if got.status_code == 200 else []


def test_poc_results_reach_influxdb_attributed_to_residents(
        services: Services, cloud: Cloud, tmp_path: Path) -> None:
    cloud.register("gw-ehpad-s", "p-0101", "p-0102", site="ehpad-s")
    sim = WardAnalyzerSim(ROUND, interval=0.2, start=datetime(2024, 3, 1, 10, 0))
    with PtyDevice(sim) as analyzer:
        config = _config(tmp_path, services, analyzer.path)
        with (tmp_path / "gateway.log").open("ab") as log:
            gateway = subprocess.Popen([*VIGIE, "gateway", "run", "--config", str(config)],
                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(analyzer.sender.delivered) == len(ROUND), 30,
                     "every result acknowledged by the gateway")
            wait_for(lambda: len(set(cloud.ids())) == len(ROUND), 30, "results stored")
        finally:
            gateway.terminate()
            gateway.wait(20)
    assert gateway.returncode == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    first = {(o["kind"], o["value"], o["device"]) for o in _observations(cloud, "p-0101")}
    second = {(o["kind"], o["value"]) for o in _observations(cloud, "p-0102")}
    assert first == {("inr", 2.8, "poc-ward-1"), ("hba1c", 7.4, "poc-ward-1")}
    assert second == {("nt_probnp", 2300.0), ("crp", 18.0)}
    assert len(cloud.ids()) == len(ROUND), "the unknown patient id is stored, unattributed"
