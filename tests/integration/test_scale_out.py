"""Scale-out (docs/scaling.md): two intake workers on a shared subscription, two shard workers
owning half the patients each, real ``vigie cloud run`` processes, real Mosquitto and InfluxDB.

The same checks as the fault suite: every reading the gateways took is stored once, and each
patient's one fresh low raises exactly one alert, also across a kill -9 of a worker of each
tier mid-stream.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_api import accounts
from tests.conftest import ADMIN, ADMIN_PASSWORD, Cloud, GatewayProc, add_user, wait_for
from tests.dbkit import database_url
from vigie.contract import decode_gateway_devices
from vigie.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOW_RULE = "dm.hypoglycaemia"
DEVICES = 6  # per gateway, one patient each
SHARDS = 16


class Workers:
    """Two intake and two shard workers sharing one relational store."""

    def __init__(self, svc: Services, root: Path) -> None:
        root.mkdir(parents=True)
        self.db_url = database_url(root, "shared")
        with contextlib.suppress(accounts.AccountExists):
            add_user(self.db_url, ADMIN, ADMIN_PASSWORD, "admin")
        self.procs: dict[str, Cloud] = {}
        for name, args in (("intake-1", ["--role", "intake", "--client-id", "it-intake-1"]),
                           ("intake-2", ["--role", "intake", "--client-id", "it-intake-2"]),
                           ("shard-a", ["--role", "shard", "--owns", "0-7"]),
                           ("shard-b", ["--role", "shard", "--owns", "8-15"])):
            (root / name).mkdir()
            cloud = Cloud(svc, root / name)
            # click keeps the last value of a repeated option: one shared database
            cloud.extra_args += ["--db-url", self.db_url, "--shards", str(SHARDS), *args]
            self.procs[name] = cloud

    def start(self) -> Workers:
        for cloud in self.procs.values():
            cloud.start()
        return self

    def restart(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].start()

    @property
    def any(self) -> Cloud:
        return self.procs["shard-a"]

    def close(self) -> None:
        for cloud in self.procs.values():
            cloud.stop()
            cloud.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{c.log()[-3000:]}" for n, c in self.procs.items())


@pytest.fixture
def workers(services: Services, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(services, tmp_path / "cloud")
    try:
        yield w.start()
    finally:
        w.close()


def write_stream(path: Path, gateway: str, n: int) -> dict[str, str]:
    """n glucose readings round-robin over the gateway's devices, 1 s apart per device and
    ending a few seconds ago (fresh enough to page); one level-2 low per device, each at its
    own place in the stream so that the lows straddle the kills. Returns device -> patient."""
    per_device = -(-n // DEVICES)
    end = datetime.now(UTC) - timedelta(seconds=5)
    with path.open("w") as f:
        for i in range(n):
            dev, k = i % DEVICES, i // DEVICES
            t = end - timedelta(seconds=per_device - 1 - k)
            low = k == 3 + dev * (per_device - 6) // DEVICES
            f.write(json.dumps({"device": f"dev-{dev}", "kind": "glucose",
                                "value": 45 if low else 100 + (i * 7) % 60, "unit": "mg/dL",
                                "time": t.isoformat()}) + "\n")
    return {f"dev-{d}": f"p-{gateway}-{d}" for d in range(DEVICES)}


def taken_ids(gw: GatewayProc) -> set[str]:
    with sqlite3.connect(gw.workdir / "outbox.sqlite3", timeout=5) as db:
        return {r[0] for r in db.execute("SELECT id FROM seen")}


def start_gateways(tmp_path: Path, svc: Services, count: int, n: int, rate: float,
                   registry: str) -> tuple[list[GatewayProc], list[str]]:
    gws: list[GatewayProc] = []
    patients: list[str] = []
    for g in range(count):
        name = f"gw-{g}"
        replay = tmp_path / f"{name}.jsonl"
        mapping = write_stream(replay, name, n)
        patients += mapping.values()
        gws.append(GatewayProc(tmp_path / name, svc, name, replay, rate=rate,
                               patients=mapping, registry=registry).start())
    return gws, patients


def check_exactly_once(workers: Workers, gws: list[GatewayProc], patients: list[str]) -> None:
    for gw in gws:
        assert gw.wait(40) == 0, gw.log()
    taken: set[str] = set().union(*(taken_ids(gw) for gw in gws))
    cloud = workers.any
    ids = wait_for(lambda: (got := cloud.ids()) and set(got) >= taken and got, 20,
                   f"{len(taken)} readings in InfluxDB")
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    assert not dupes, f"{len(dupes)} readings stored twice"
    assert set(ids) == taken
    expected = {(p, LOW_RULE): 1 for p in patients}

    def alerts() -> Counter[tuple[str, str]]:
        rows = cloud.api.get("/alerts", params={"limit": 1000}).json()
        return Counter((a["patient"], a["rule"]) for a in rows if a["rule"] == LOW_RULE)

    got = wait_for(lambda: (c := alerts()) == expected and c, 15, "one alert per patient")
    assert got == expected
    # The intake records stream numbers after the shards have stored the readings: a gap
    # may show until the slower intake worker's transaction lands, never for good.
    deadline = time.monotonic() + 15
    while (gaps := cloud.api.get("/gaps").json()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gaps == [], f"false gaps (concurrent intake workers): {gaps}\n{workers.logs()}"


def test_two_intake_two_shard_workers_store_once_alert_once(
        services: Services, workers: Workers, tmp_path: Path) -> None:
    gws, patients = start_gateways(tmp_path, services, 3, 600, rate=0, registry=workers.db_url)
    check_exactly_once(workers, gws, patients)
    shards = {c.api.get("/health").json()["ingest"]["extra"].get("owns")
              for c in workers.procs.values()}
    assert shards == {None, "0-7", "8-15"}


def test_kill9_of_an_intake_and_a_shard_worker_loses_nothing(
        services: Services, workers: Workers, tmp_path: Path) -> None:
    gws, patients = start_gateways(tmp_path, services, 2, 900, rate=250,
                                   registry=workers.db_url)
    cloud = workers.any
    total = 2 * 900
    wait_for(lambda: len(cloud.ids()) > 300, 20, "first readings stored")
    workers.restart("intake-1")  # kill -9, then back with the same session
    wait_for(lambda: len(cloud.ids()) > 900, 20, "more readings stored")
    at_kill = len(cloud.ids())
    workers.restart("shard-a")
    assert at_kill < total, "the shard worker was killed mid-stream"
    check_exactly_once(workers, gws, patients)
    health = {n: c.api.get("/health").json()["ingest"] for n, c in workers.procs.items()}
    assert all(h["messages"] > 0 for h in health.values()), health  # both tiers both shared


def test_device_lists_are_published_once_by_the_owner_of_shard_0(
        services: Services, workers: Workers) -> None:
    """Every worker shares the relational store; exactly one process (the owner of shard 0)
    publishes the gateways' device lists, so a gateway gets each version once."""
    got: list[tuple[str, bytes, bool]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload), bool(m.retain)))
    sub.connect("127.0.0.1", services.mosquitto.port)
    sub.loop_start()
    try:
        sub.subscribe("vigie/v1/gateways/+/config/devices", qos=1)
        api = workers.procs["intake-2"].api  # any worker's API: the store is shared
        for path, body in (("/sites", {"id": "site-1", "name": "Site 1"}),
                           ("/patients", {"id": "p-1", "site": "site-1"}),
                           ("/gateways", {"id": "gw-z", "site": "site-1"}),
                           ("/devices", {"id": "dev-1", "site": "site-1", "gateway": "gw-z",
                                         "patient": "p-1"})):
            resp = api.post(path, json=body)
            assert resp.status_code == 201, resp.text
        wait_for(lambda: got, 20, "the device list published")
        time.sleep(3)  # every worker polls each second: a second publisher would show
    finally:
        sub.disconnect()
        sub.loop_stop()
    (topic, payload, _), = got
    assert topic == "vigie/v1/gateways/gw-z/config/devices"
    assert decode_gateway_devices(payload, "gw-z").devices[0].patient_id == "p-1"
    said = {n for n, c in workers.procs.items() if "device list of gw-z published" in c.log()}
    assert said == {"shard-a"}, "the owner of shards 0-7"
