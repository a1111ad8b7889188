"""A device a nurse assigns in the API is attributed by its gateway: real processes, real
Mosquitto and InfluxDB. The assignment reaches the gateway over MQTT (retained, QoS 1),
is saved beside the outbox and survives a gateway restart while the broker is down."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cloud, GatewayProc, wait_for
from vigie.services import Services

pytestmark = pytest.mark.integration

N = 240
RATE = 8.0  # readings per second: the whole file takes half a minute
SINCE = {"start": "2026-01-01T00:00:00Z"}


def _replay(path: Path) -> None:
    """N glucose readings of dev-9 (a device the gateway's TOML does not know); the value
    says which line a reading came from (100 + line)."""
    with path.open("w") as f:
        for i in range(N):
            t = f"2026-11-01T{i // 60 // 60:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
            f.write(json.dumps({"device": "dev-9", "kind": "glucose", "value": 100 + i,
                                "unit": "mg/dL", "time": t, "seq": i}) + "\n")


def _ward(cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> GatewayProc:
    """Site, patient p-9 and gateway gw-c in the API; gw-c started on the replay of dev-9,
    a device nobody has assigned yet."""
    for path, body in (("/sites", {"id": "site-1", "name": "Site 1"}),
                       ("/patients", {"id": "p-9", "site": "site-1"}),
                       ("/gateways", {"id": "gw-c", "site": "site-1"})):
        assert cloud.api.post(path, json=body).status_code == 201
    replay = tmp_path / "r.jsonl"
    _replay(replay)
    gw: GatewayProc = gateway_factory("gw-c", replay, rate=RATE).start()
    return gw


def _attributed(cloud: Cloud) -> list[float]:
    rows = cloud.api.get("/patients/p-9/observations", params=SINCE)
    assert rows.status_code == 200, rows.text
    return sorted(r["value"] for r in rows.json())


def _unattributed(cloud: Cloud) -> list[float]:
    rows = cloud.api.get("/attribution", params={"limit": 5000})
    assert rows.status_code == 200, rows.text
    return sorted(r["value"] for r in rows.json() if r["device"] == "dev-9")


def _outbox_patients(gw_dir: Path) -> list[str | None]:
    with sqlite3.connect(gw_dir / "outbox.sqlite3") as db:
        return [json.loads(b)["patient"] for (b,) in db.execute("SELECT body FROM outbox")]


def test_assigned_device_is_attributed_and_survives_restart(
        services: Services, cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    api = cloud.api
    gw = _ward(cloud, gateway_factory, tmp_path)
    wait_for(lambda: len(cloud.ids()) >= 10, 30, "first (unattributed) readings stored")

    created = api.post("/devices", json={"id": "dev-9", "site": "site-1", "gateway": "gw-c",
                                         "patient": "p-9"})
    assert created.status_code == 201, created.text
    wait_for(lambda: "device dev-9 now attributed to patient p-9" in gw.log(), 20,
             "the gateway applied the device list")
    wait_for(lambda: len(_attributed(cloud)) >= 10, 30, "attributed readings stored")
    before = _unattributed(cloud)
    attributed = _attributed(cloud)
    assert len(before) >= 10, "readings taken before the assignment stay unattributed"
    assert max(before) < min(attributed), "attribution starts at one reading and stays"
    assert (gw.workdir / "outbox.devices.json").exists()

    # Restart the gateway while the broker is down: the saved list still attributes.
    gw.stop()
    services.mosquitto.stop()
    taken_before = len(cloud.ids())
    gw.start()
    wait_for(lambda: re.search(r"device list version \d+ loaded", gw.log()), 20,
             "saved list loaded")
    wait_for(lambda: len(_outbox_patients(gw.workdir)) >= 5, 20, "readings queued offline")
    assert set(_outbox_patients(gw.workdir)) == {"p-9"}
    services.mosquitto.start()
    assert gw.wait(90) == 0, gw.log()
    ids = wait_for(lambda: (got := cloud.ids()) and len(set(got)) >= N and got, 60,
                   f"all {N} readings stored")
    assert len(ids) == N and len(ids) > taken_before
    attributed, unattributed = _attributed(cloud), _unattributed(cloud)
    assert unattributed == before, "no reading changed its attribution"
    assert attributed == [100.0 + i for i in range(len(before), N)]
    assert "bad device list" not in gw.log()


def test_an_assignment_reaches_the_gateway_while_influxdb_is_down(
        services: Services, cloud: Cloud, gateway_factory: Any, tmp_path: Path) -> None:
    """The ingest worker retries its InfluxDB write in a loop; device lists are published
    from that loop too, so a nurse's assignment does not wait for the database to return."""
    api = cloud.api
    gw = _ward(cloud, gateway_factory, tmp_path)
    wait_for(lambda: len(cloud.ids()) >= 5, 30, "first readings stored")
    services.influx.stop()
    wait_for(lambda: "InfluxDB unavailable" in cloud.log(), 20, "ingest retrying its write")
    created = api.post("/devices", json={"id": "dev-9", "site": "site-1", "gateway": "gw-c",
                                         "patient": "p-9"})
    assert created.status_code == 201, created.text
    wait_for(lambda: "device dev-9 now attributed to patient p-9" in gw.log(), 20,
             "the list applied while InfluxDB is down")
    services.influx.start()
    assert gw.wait(90) == 0, gw.log()
    ids = wait_for(lambda: (got := cloud.ids()) and len(set(got)) >= N and got, 60,
                   f"all {N} readings stored")
    assert len(ids) == N
    assert _attributed(cloud), "readings taken after the assignment are attributed"
