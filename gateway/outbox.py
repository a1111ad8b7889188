"""Durable, bounded outbox of readings in SQLite (WAL).

Contract with the rest of the gateway:
- ``put`` commits readings (and the source's cursor, in the same transaction) before it
  returns: only then may the source tell the device the reading was taken.
- Each device gets a stream sequence number per distinct reading (1, 2, 3...); a reading whose
  deterministic id was already taken keeps its first number and is not queued again.
- ``remove`` is called only after the broker's PUBACK; until then a reading survives crashes,
  ``kill -9`` and power loss (``synchronous=FULL``).
- The outbox is bounded: when full, ``put`` raises ``OutboxFull`` and takes nothing. Old
  readings are never dropped to make room. A full disk is the same refusal
  (``OutboxDiskFull``), not a crash.
- Deleting acknowledged rows needs a little disk too (WAL frames). A ballast file beside the
  database reserves that room: when a delete meets a full disk, the ballast is released so the
  outbox can drain, and it is laid again once there is space.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gateway.errors import OutboxDiskFull, OutboxError, OutboxFull
from vigie.contract import Reading

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  row INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  device TEXT NOT NULL,
  body TEXT NOT NULL,
  taken_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (device TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (
  id TEXT PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, taken_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL);
"""


def _disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


@dataclass(frozen=True, slots=True)
class Pending:
    row: int
    body: dict[str, object]


class Outbox:
    def __init__(self, path: Path, capacity: int = 100_000, seen_days: float = 30.0,
                 ballast_bytes: int = 1 << 20) -> None:
        if capacity < 1:
            raise ValueError("outbox capacity must be at least 1")
        self.path = path
        self._ballast = path.with_name(path.name + ".reserve")
        self._ballast_bytes = ballast_bytes
        self.capacity = capacity
        self._seen_s = seen_days * 86400
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Keep the WAL small and copied into the database often: on a full disk a WAL
            # holding everything could be neither checkpointed nor appended to.
            self._db.execute("PRAGMA wal_autocheckpoint=64")
            self._db.execute("PRAGMA journal_size_limit=262144")
            self._db.executescript(_SCHEMA)
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        self._lay_ballast()

    def _lay_ballast(self) -> bool:
        """Reserve room for deletions; False when the disk cannot spare it yet."""
        if self._ballast_bytes <= 0 or self._ballast.exists():
            return True
        try:
            with self._ballast.open("wb") as f:
                f.write(b"\0" * self._ballast_bytes)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self._ballast.unlink(missing_ok=True)  # no room yet; try again after a drain
            return False
        return True

    def _free_bytes(self) -> int:
        """Room for new readings: free disk plus pages the database freed and will reuse
        (counted only when the disk alone is short: this runs before every take)."""
        st = os.statvfs(self.path.parent)
        disk = st.f_bavail * st.f_frsize
        if disk >= self._ballast_bytes:
            return disk
        free_pages = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return disk + free_pages * self._page_size

    def _ensure_ballast(self) -> bool:
        """Before taking more: the reserve in place and as much again free on the disk.

        SQLite needs room to delete (WAL frames) and to checkpoint; a disk filled to the last
        byte by the outbox could do neither, so taking stops well before.
        """
        if self._ballast_bytes <= 0:
            return True
        if self._ballast.exists():
            return self._free_bytes() >= self._ballast_bytes
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.debug("checkpoint failed: %s", exc)
        return self._lay_ballast() and self._free_bytes() >= self._ballast_bytes

    def _release_ballast(self) -> bool:
        if not self._ballast.exists():
            return False
        self._ballast.unlink()
        log.warning("outbox disk full: released the %d-byte reserve so acknowledged readings "
                    "can be deleted", self._ballast_bytes)
        return True

    @property
    def depth(self) -> int:
        return self._depth

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def cursor(self, source: str) -> str | None:
        row = self._db.execute("SELECT cursor FROM cursors WHERE source=?", (source,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, drafts: Sequence[Reading], cursor: tuple[str, str] | None = None
            ) -> list[Reading]:
        """Commit readings (stream_seq assigned here) and the source cursor atomically.

        Returns the readings as taken, duplicates with their original sequence number.
        Raises OutboxFull (nothing taken) when the new readings do not fit.
        """
        with self._lock:
            if not self._ensure_ballast():
                raise OutboxDiskFull(self._depth, "less free space than the reserve")
            try:
                return self._put(drafts, cursor)
            except sqlite3.Error as exc:
                if _disk_full(exc):
                    raise OutboxDiskFull(self._depth, str(exc)) from exc
                raise OutboxError(f"outbox write failed: {exc}") from exc

    def _put(self, drafts: Sequence[Reading], cursor: tuple[str, str] | None) -> list[Reading]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            taken, added = self._assign(drafts)
            if added and self._depth + len(added) > self.capacity:
                raise OutboxFull(self._depth, self.capacity)
            now = time.time()
            db.executemany(
                "INSERT INTO outbox(id, device, body, taken_at) VALUES (?,?,?,?)",
                [(r.id, r.device_id, json.dumps(r.to_json(), separators=(",", ":")), now)
                 for r in added])
            db.executemany("INSERT INTO seen(id, device, seq, taken_at) VALUES (?,?,?,?)",
                           [(r.id, r.device_id, r.stream_seq, now) for r in added])
            if cursor is not None:
                db.execute("INSERT INTO cursors(source, cursor) VALUES (?,?) ON CONFLICT(source)"
                           " DO UPDATE SET cursor=excluded.cursor", cursor)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._depth += len(added)
        return taken

    def _assign(self, drafts: Sequence[Reading]) -> tuple[list[Reading], list[Reading]]:
        taken: list[Reading] = []
        added: list[Reading] = []
        batch_ids: dict[str, Reading] = {}
        next_seq: dict[str, int] = {}
        for draft in drafts:
            known = batch_ids.get(draft.id) or self._seen(draft)
            if known is not None:
                taken.append(known)
                continue
            seq = next_seq.get(draft.device_id) or self._last_seq(draft.device_id) + 1
            next_seq[draft.device_id] = seq + 1
            reading = replace(draft, stream_seq=seq)
            batch_ids[draft.id] = reading
            taken.append(reading)
            added.append(reading)
        for device, nxt in next_seq.items():
            self._db.execute("INSERT INTO streams(device, last_seq) VALUES (?,?) ON CONFLICT"
                             "(device) DO UPDATE SET last_seq=excluded.last_seq", (device, nxt - 1))
        return taken, added

    def _seen(self, draft: Reading) -> Reading | None:
        row = self._db.execute("SELECT seq FROM seen WHERE id=?", (draft.id,)).fetchone()
        return None if row is None else replace(draft, stream_seq=int(row[0]))

    def _last_seq(self, device: str) -> int:
        row = self._db.execute("SELECT last_seq FROM streams WHERE device=?", (device,)).fetchone()
        return 0 if row is None else int(row[0])

    def pending(self, limit: int, after_row: int = 0) -> list[Pending]:
        """The oldest readings not yet acknowledged by the broker, after ``after_row``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row, body FROM outbox WHERE row > ? ORDER BY row LIMIT ?",
                (after_row, limit)).fetchall()
        return [Pending(int(r), json.loads(b)) for r, b in rows]

    def get(self, rows: Iterable[int]) -> list[Pending]:
        wanted = sorted(set(rows))
        with self._lock:
            found = [self._db.execute("SELECT row, body FROM outbox WHERE row=?", (r,)).fetchone()
                     for r in wanted]
        return [Pending(int(r), json.loads(b)) for r, b in (f for f in found if f)]

    def remove(self, rows: Iterable[int]) -> int:
        """Forget readings the broker acknowledged."""
        batch = [(r,) for r in rows]
        with self._lock:
            try:
                removed = self._delete(batch)
            except sqlite3.Error as exc:
                if not (_disk_full(exc) and self._release_ballast()):
                    raise OutboxError(f"outbox delete failed: {exc}") from exc
                try:
                    removed = self._delete(batch)
                except sqlite3.Error as again:
                    raise OutboxError(f"outbox delete failed: {again}") from again
            self._depth -= removed
        return removed

    def _delete(self, batch: list[tuple[int]]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            before = db.total_changes
            db.executemany("DELETE FROM outbox WHERE row=?", batch)
            removed = db.total_changes - before
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return removed

    def prune_seen(self, now: float | None = None) -> int:
        """Drop dedupe memory older than ``seen_days`` (never the outbox itself)."""
        limit = (now or time.time()) - self._seen_s
        with self._lock:
            cur = self._db.execute("DELETE FROM seen WHERE taken_at < ?", (limit,))
        return int(cur.rowcount)

    def taken_ids(self) -> list[str]:
        """Every reading id this outbox remembers taking (for audits and the demo)."""
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT id FROM seen")]

    def taken_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
