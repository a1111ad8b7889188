"""The gateway daemon's own chores (the whole daemon runs in tests/integration and faults)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from gateway.config import load
from gateway.daemon import Gateway


def test_housekeeping_forgets_ids_older_than_seen_days(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text("")
    (tmp_path / "gateway.toml").write_text("""
[gateway]
id = "gw-1"
seen_days = 2
[[sources]]
type = "replay"
path = "s.jsonl"
""")
    gateway = Gateway(load(tmp_path / "gateway.toml"))
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    old, new = time.time() - 3 * 86400, time.time() - 86400
    db.executemany("INSERT INTO seen(id, device, seq, taken_at) VALUES (?,?,?,?)",
                   [("a" * 32, "d", 1, old), ("b" * 32, "d", 2, new)])
    db.commit()
    assert asyncio.run(gateway.housekeeping_once()) == 1
    assert [r[0] for r in db.execute("SELECT id FROM seen")] == ["b" * 32]
    gateway.outbox.close()
