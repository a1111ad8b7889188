"""Active and standby cloud processes on one PostgreSQL (``cloud_api.leadership``).

Two real ``vigie cloud run`` share a PostgreSQL database (always PostgreSQL here, whatever
``VIGIE_TEST_DB`` says: SQLite has no standby). The first holds the ingest lock; the
second serves its API and stands by. A gateway streams ten patients' glucose, each with one
level-2 low, half of them measured before the active process is killed with SIGKILL and half
after. The standby must take over within 30 s, every reading the gateway took must be
stored exactly once, and each patient's low must have raised exactly one alert.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Cloud, GatewayProc, query_db, wait_for
from tests.dbkit import postgresql_url
from tests.faults.test_faults import DEVICES, LOW_RULE, PATIENTS, taken_ids
from vigie.services import Services

pytestmark = pytest.mark.integration

PER_DEVICE = 60
EARLY_LOW, LATE_LOW = 5, 50  # index in a device's series of its one low
TAKEOVER_S = 30.0


def write_stream(path: Path, spacing_s: float = 1.0) -> None:
    """Round-robin over the devices, ending a few seconds ago (fresh enough to alert); the
    first half of the devices has its low early in the stream, the others late."""
    end = datetime.now(UTC) - timedelta(seconds=5)
    with path.open("w") as f:
        for k in range(PER_DEVICE):
            t = end - timedelta(seconds=spacing_s * (PER_DEVICE - 1 - k))
            for dev in range(DEVICES):
                low = EARLY_LOW if dev < DEVICES // 2 else LATE_LOW
                value = 45 if k == low else 100 + (k * 7 + dev) % 60
                f.write(json.dumps({"device": f"dev-{dev}", "kind": "glucose", "value": value,
                                    "unit": "mg/dL", "time": t.isoformat()}) + "\n")


@pytest.mark.timeout(240)
def test_the_standby_takes_over_after_kill9_and_nothing_is_lost_or_doubled(
        services: Services, tmp_path: Path) -> None:
    db_url = postgresql_url(tmp_path)
    active = Cloud(services, tmp_path / "active", db_url=db_url).start()
    standby = Cloud(services, tmp_path / "standby", db_url=db_url).start(standby=True)
    replay = tmp_path / "stream.jsonl"
    write_stream(replay)
    gw = GatewayProc(tmp_path / "gw", services, "gw-1", replay, rate=40.0,
                     patients=PATIENTS, registry=db_url)
    try:
        assert active.leadership() == "active" and standby.leadership() == "standby"
        gw.start()
        total = PER_DEVICE * DEVICES
        # the early lows are in, and so is a third of the stream: kill the active process
        wait_for(lambda: len(set(active.ids())) >= total // 3, 60, "a third stored")
        early = wait_for(lambda: _low_alerts(db_url), 20, "the early lows' alerts")
        assert set(early) == {f"p-{d}" for d in range(DEVICES // 2)}
        killed_at = time.monotonic()
        active.kill()
        wait_for(lambda: standby.leadership() == "active" and standby._subscribed(),
                 TAKEOVER_S, "the standby active and subscribed", step=0.2)
        took_over_s = time.monotonic() - killed_at
        print(f"standby took over {took_over_s:.1f} s after the kill -9")  # docs/scaling.md

        assert gw.wait(120) == 0, gw.log()[-3000:]  # drained: every reading acknowledged
        taken = taken_ids(gw)
        assert len(taken) == total
        ids = wait_for(lambda: (got := standby.ids()) and set(got) >= taken and got, 60,
                       f"{total} readings in InfluxDB")
        doubled = [i for i, c in Counter(ids).items() if c > 1]
        assert not doubled, f"{len(doubled)} readings stored twice"
        assert set(ids) == taken
        every_patient = {p: 1 for p in PATIENTS.values()}
        per = wait_for(lambda: (c := _low_alerts(db_url)) == every_patient and c, 30,
                       "one low alert per patient")
        assert per == every_patient
    finally:
        gw.stop()
        for cloud in (active, standby):
            cloud.stop()
            cloud.close()


def _low_alerts(db_url: str) -> dict[str, int]:
    rows = query_db(db_url, "SELECT patient_id, count(*) FROM alerts WHERE rule = :rule "
                    "GROUP BY patient_id", rule=LOW_RULE)
    return {str(p): int(n) for p, n in rows}
