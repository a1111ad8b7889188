"""BLE end to end: simulated peripherals -> real ``vigie gateway run`` (ble source, bumble
backend over HCI/TCP) -> Mosquitto -> ``vigie cloud run`` -> InfluxDB."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cloud, wait_for
from vigie.services import Services, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GATEWAY = [sys.executable, "-m", "vigie"]
RECORDS = 12


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """InfluxQL series as one dict per point."""
    return [dict(zip(s["columns"], values, strict=True))
            for s in series for values in s.get("values", [])]


def gateway_config(workdir: Path, svc: Services, ready: dict[str, Any]) -> Path:
    devices = "".join("[[devices]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in d.items())
                      for d in ready["devices"])
    source = dict(ready["source"], keystore=str(workdir / "bonds.json"), idle_s=0.5)
    path = workdir / "gateway.toml"
    path.write_text(f"""
[gateway]
id = "gw-ble"
site = "home-ble"
outbox = "outbox.sqlite3"
drain_timeout_s = 2
[mqtt]
host = "127.0.0.1"
port = {svc.mosquitto.port}
keepalive = 2
{devices}
[[sources]]
{"".join(f"{k} = {toml_value(v)}" + chr(10) for k, v in source.items())}
""")
    return path


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_glucose_records_reach_influxdb_attributed(services: Services, cloud: Cloud,
                                                   tmp_path: Path) -> None:
    cloud.register("gw-ble", "p-ble-1", site="home-ble")
    sim_log = tmp_path / "sim.log"
    sim = start([sys.executable, "-m", "firmware_sim.ble.demo", "--port", str(free_port()),
                 "--patient", "p-ble-1", "--profile", "glucometer",
                 "--records", str(RECORDS)], sim_log)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        line = wait_for(lambda: sim_log.exists() and sim_log.read_text().partition("\n")[0],
                        20, "simulator ready")
        ready = json.loads(line)
        config = gateway_config(tmp_path, services, ready)
        gateway = start([*GATEWAY, "gateway", "run", "--config", str(config)],
                        tmp_path / "gateway.log")
        wait_for(lambda: len(set(cloud.ids())) >= RECORDS, 40, f"{RECORDS} readings stored")
        # straight from InfluxDB: the API's authentication is not what this test is about
        points = rows(cloud.store.query(
            "SELECT id, value, patient, kind, device FROM observation"))
        assert len(points) == RECORDS, points  # each record once
        assert {(r["patient"], r["kind"], r["device"]) for r in points} == {
            ("p-ble-1", "glucose", "ble-glucometer-p-ble-1")}
        assert all(80 <= r["value"] <= 180 for r in points)
    except BaseException:
        print((tmp_path / "gateway.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if gateway is not None:
            stop(gateway)
        stop(sim)
