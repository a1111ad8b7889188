"""A broker that loses what it acknowledged: readings still land in InfluxDB exactly once.

Mosquitto keeps messages for an offline subscriber in memory and writes its store every
``autosave_interval`` (5 s in ``vigie.services``), not before it sends a PUBACK. Killed with
SIGKILL in between, it comes back without the messages it acknowledged since its last save.
Issue 11 (point 4): with the cloud stopped, 20 readings PUBACKed by the broker, and deleted by
their gateway on that PUBACK, were lost this way. The gateway now deletes a reading only when
the cloud confirms it stored it (``vigie.contract.stored_topic``), and sends again what was
sent over an earlier connection and never confirmed.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Cloud, GatewayProc, wait_for, write_replay
from vigie.services import Services

pytestmark = pytest.mark.integration

READINGS = 3000
RATE = 150  # readings/s: twenty seconds of stream, several autosaves of the broker's store


def _outbox(gw: GatewayProc) -> Path:
    return gw.workdir / "outbox.sqlite3"


def _acknowledged(gw: GatewayProc) -> int:
    """Readings the broker acknowledged: taken, and not waiting to be sent (before end-to-end
    acknowledgement, a PUBACK deleted them; now it marks them ``sent``)."""
    try:
        with sqlite3.connect(_outbox(gw), timeout=5) as db:
            taken = int(db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            unsent = ("SELECT COUNT(*) FROM outbox o WHERE NOT EXISTS "
                      "(SELECT 1 FROM sent s WHERE s.row = o.row)" if "sent" in tables
                      else "SELECT COUNT(*) FROM outbox")
            return taken - int(db.execute(unsent).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the gateway has not created its outbox yet


def _taken(gw: GatewayProc) -> set[str]:
    with sqlite3.connect(_outbox(gw), timeout=5) as db:
        return {r[0] for r in db.execute("SELECT id FROM seen")}


def _saved_at(services: Services) -> float:
    store = services.mosquitto.dir / "mosquitto.db"
    return store.stat().st_mtime if store.exists() else 0.0


def _next_autosave(services: Services) -> float:
    """Wait for the broker to write its store, and return when it did."""
    before = _saved_at(services)
    return float(wait_for(lambda: (t := _saved_at(services)) != before and t, 15,
                          "the broker's autosave"))


def test_broker_kill9_after_puback_before_autosave_loses_nothing(
        services: Services, cloud: Cloud, tmp_path: Path) -> None:
    # the ingest session (its subscriptions) is in the broker's store: what the broker takes
    # while the cloud is away is queued for it, and would survive a clean restart
    _next_autosave(services)
    cloud.stop()
    replay = tmp_path / "r.jsonl"
    write_replay(replay, READINGS, devices=3)
    gw = GatewayProc(tmp_path / "gw-loss", services, "gw-loss", replay, rate=RATE,
                     registry=cloud.db_url)
    try:
        gw.start()
        wait_for(lambda: _acknowledged(gw) > 300, 30, "readings acknowledged by the broker")
        saved = _next_autosave(services)
        acked_at_save = _acknowledged(gw)
        time.sleep(2.0)  # within the 5 s autosave interval
        acked_at_kill = _acknowledged(gw)
        services.mosquitto.stop(hard=True)  # SIGKILL
        assert _saved_at(services) == saved, "killed after the next autosave: nothing at risk"
        assert acked_at_kill - acked_at_save > 50, "no PUBACK since the last autosave"
        services.mosquitto.start()  # same port, same persistence folder
        cloud.start()
        assert gw.wait(120) == 0, gw.log()
        taken = _taken(gw)
        assert len(taken) == READINGS
        deadline = time.monotonic() + 30
        while set(ids := cloud.ids()) != taken and time.monotonic() < deadline:
            time.sleep(0.5)
        lost = taken - set(ids)
        assert len(lost) == 0, (f"{len(lost)} readings lost, of {acked_at_kill - acked_at_save} "
                          f"the broker acknowledged after its last autosave")
        dupes = [i for i, c in Counter(ids).items() if c > 1]
        assert not dupes, f"{len(dupes)} readings stored twice"
        assert set(ids) == taken
    finally:
        gw.stop()
