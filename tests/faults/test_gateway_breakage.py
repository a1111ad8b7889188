"""A gateway whose publisher can no longer read its outbox must stop (exit status 2, a
clear line in the log) so that its supervisor restarts it, instead of going on taking
readings that nothing publishes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for, write_replay
from vigie.services import Services

pytestmark = pytest.mark.integration


def test_publisher_failure_stops_the_gateway(services: Services, gateway_factory: Any,
                                             tmp_path: Path) -> None:
    replay = tmp_path / "s.jsonl"
    write_replay(replay, 20)
    gw = gateway_factory("gw-broken", replay, exit_when_done=False).start()
    wait_for(lambda: "replay replay: done" in gw.log() and "connected to broker" in gw.log(),
             30, "the replay to finish and the gateway to connect")
    with sqlite3.connect(gw.workdir / "outbox.sqlite3") as db:  # the outbox breaks under it
        db.execute("DROP TABLE outbox")
    assert gw.wait(30) == 2
    log = gw.log()
    assert "MQTT publisher stopped" in log and "outbox read failed" in log, log
