"""Fault injection on the real chain: every reading taken lands once, in order, alerts once.

Each test replays a known stream (10 devices of 10 patients, one level-2 hypoglycaemia per
patient, everything else in range) through a real gateway process, a real broker, a real
ingest process and a real InfluxDB, breaks one of them on the way, and then checks the same
four things: the distinct readings stored equal the readings the gateway took, none twice,
each device's stream numbers increase with measurement time, and each patient's low raised
exactly one alert.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cloud, GatewayProc, wait_for
from vigie.services import Services

pytestmark = pytest.mark.integration

DEVICES = 10
LOW_RULE = "dm.hypoglycaemia"
PATIENTS = {f"dev-{i}": f"p-{i}" for i in range(DEVICES)}


def write_stream(path: Path, n: int, spacing_s: float = 1.0, lows: tuple[int, ...] = (7,)
                 ) -> None:
    """n readings, round-robin over devices, ``spacing_s`` apart per device and ending a few
    seconds ago (so the lows are fresh enough to alert), a level-2 low at each index in
    ``lows`` of every device's series."""
    per_device = -(-n // DEVICES)
    end = datetime.now(UTC) - timedelta(seconds=5)
    with path.open("w") as f:
        for i in range(n):
            dev, k = i % DEVICES, i // DEVICES
            t = end - timedelta(seconds=spacing_s * (per_device - 1 - k))
            value = 45 if k in lows else 100 + (i * 7) % 60
            f.write(json.dumps({"device": f"dev-{dev}", "kind": "glucose", "value": value,
                                "unit": "mg/dL", "time": t.isoformat()}) + "\n")


def taken_ids(gw: GatewayProc, outbox: Path | None = None) -> set[str]:
    try:
        with sqlite3.connect(outbox or gw.workdir / "outbox.sqlite3", timeout=5) as db:
            return {r[0] for r in db.execute("SELECT id FROM seen")}
    except sqlite3.OperationalError:
        return set()  # the gateway has not created its outbox yet


def check_chain(cloud: Cloud, taken: set[str]) -> None:
    ids = wait_for(lambda: (got := cloud.ids()) and set(got) >= taken and got, 90,
                   f"{len(taken)} readings in InfluxDB")
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    assert not dupes, f"{len(dupes)} readings stored twice"
    assert set(ids) == taken
    series = cloud.store.query("SELECT seq FROM observation GROUP BY device")
    for s in series:
        seqs = [v[1] for v in s["values"]]  # ordered by time
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), s["tags"]
    expected = {(p, LOW_RULE): 1 for p in PATIENTS.values()}

    def alerts_per_rule() -> Counter[tuple[str, str]]:
        # alerts are recorded just after the InfluxDB write: give the last batch a moment
        alerts = cloud.api.get("/alerts", params={"limit": 1000}).json()
        return Counter((a["patient"], a["rule"]) for a in alerts if a["rule"] == LOW_RULE)

    per = wait_for(lambda: (c := alerts_per_rule()) == expected and c, 20, "one alert each")
    assert per == expected


# gw_factory(name, replay, **GatewayProc options) -> a GatewayProc stopped at teardown
GatewayFactory = Callable[..., GatewayProc]


@pytest.fixture
def gw_factory(tmp_path: Path, services: Services, cloud: Cloud) -> Iterator[GatewayFactory]:
    made: list[GatewayProc] = []

    def make(name: str, replay: Path, **kw: Any) -> GatewayProc:
        g = GatewayProc(tmp_path / name, services, name, replay, patients=PATIENTS,
                        registry=cloud.db_url, **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def test_gateway_kill9_three_times_mid_batch(cloud: Cloud, gw_factory: GatewayFactory,
                                             tmp_path: Path) -> None:
    replay = tmp_path / "s.jsonl"
    write_stream(replay, 3000)
    gw = gw_factory("gw-k9", replay, rate=1000)
    for threshold in (300, 1200, 2000):
        gw.start()

        def past(t: int = threshold) -> bool:
            return len(taken_ids(gw)) > t

        wait_for(past, 30, f"{threshold} taken")
        gw.kill()
    gw.start()
    assert gw.wait(60) == 0, gw.log()
    taken = taken_ids(gw)
    assert len(taken) == 3000
    check_chain(cloud, taken)


def test_broker_down_for_a_while(services: Services, cloud: Cloud, gw_factory: GatewayFactory,
                                 tmp_path: Path) -> None:
    replay = tmp_path / "s.jsonl"
    write_stream(replay, 2000)
    gw = gw_factory("gw-bd", replay, rate=500).start()
    wait_for(lambda: len(cloud.ids()) > 200, 30, "first readings stored")
    services.mosquitto.stop()
    depth = wait_for(lambda: _depth(gw) > 300 and _depth(gw), 30, "readings piling up")
    assert depth > 300
    services.mosquitto.start()
    assert gw.wait(90) == 0, gw.log()
    check_chain(cloud, taken_ids(gw))


def test_influxdb_down_for_a_while(services: Services, cloud: Cloud, gw_factory: GatewayFactory,
                                   tmp_path: Path) -> None:
    replay = tmp_path / "s.jsonl"
    write_stream(replay, 2000)
    gw = gw_factory("gw-id", replay, rate=500).start()
    wait_for(lambda: len(cloud.ids()) > 200, 30, "first readings stored")
    services.influx.stop()
    time.sleep(4)  # the gateway goes on: the broker queues for the ingest session
    services.influx.start()
    assert gw.wait(90) == 0, gw.log()
    check_chain(cloud, taken_ids(gw))
    assert cloud.api.get("/health").json()["ingest"]["write_retries"] > 0


def _depth(gw: GatewayProc, outbox: Path | None = None) -> int:
    try:
        with sqlite3.connect(outbox or gw.workdir / "outbox.sqlite3", timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_gateway_offline_for_a_simulated_day(services: Services, cloud: Cloud,
                                             gw_factory: GatewayFactory, tmp_path: Path) -> None:
    """A day of 5-minute readings from 10 devices piles up while the broker is unreachable,
    then drains when it is back. Each patient had a low 23 hours ago (stale by the time it
    arrives: no alert) and one 10 minutes ago (one alert, never two)."""
    replay = tmp_path / "s.jsonl"
    write_stream(replay, 288 * DEVICES, spacing_s=300, lows=(11, 285))  # 24 h, 5-min steps
    services.mosquitto.stop()
    gw = gw_factory("gw-day", replay, exit_when_done=True).start()
    wait_for(lambda: _depth(gw) == 2880, 60, "a day of readings in the outbox")
    assert gw.proc is not None and gw.proc.poll() is None, gw.log()
    assert cloud.ids() == []
    services.mosquitto.start()
    assert gw.wait(90) == 0, gw.log()
    check_chain(cloud, taken_ids(gw))
    lows = [a for a in cloud.api.get("/alerts").json() if a["rule"] == LOW_RULE]
    now = datetime.now(UTC)
    assert all(now - datetime.fromisoformat(a["time"]) < timedelta(hours=1) for a in lows)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a real full disk needs root to mount a tmpfs")
def test_outbox_disk_full_refuses_then_recovers(services: Services, cloud: Cloud,
                                                gw_factory: GatewayFactory, tmp_path: Path) -> None:
    """The outbox sits on a 4 MiB filesystem while the broker is down: the gateway refuses
    readings (logs it, keeps running, keeps its cursor) instead of dropping or crashing, and
    takes the rest once the broker is back and the outbox drains."""
    disk = tmp_path / "disk"
    assert _mount_tmpfs(disk, "4m"), "tmpfs mount failed"
    try:
        replay = tmp_path / "s.jsonl"
        write_stream(replay, 8000)
        services.mosquitto.stop()
        gw = gw_factory("gw-full", replay, outbox=str(disk / "outbox.sqlite3"),
                        reserve_bytes=256 * 1024)
        gw.start()
        wait_for(lambda: "disk full" in gw.log(), 60, "the gateway to refuse readings")
        refused_at = len(taken_ids(gw, disk / "outbox.sqlite3"))
        time.sleep(1.5)
        assert gw.proc is not None and gw.proc.poll() is None, gw.log()
        assert 0 < refused_at < 8000
        assert len(taken_ids(gw, disk / "outbox.sqlite3")) == refused_at, "nothing taken"
        services.mosquitto.start()
        assert gw.wait(120) == 0, gw.log()
        taken = taken_ids(gw, disk / "outbox.sqlite3")
        assert len(taken) == 8000
        check_chain(cloud, taken)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
