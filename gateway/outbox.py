"""Durable, bounded outbox of readings in SQLite (WAL).

Contract with the rest of the gateway:
- ``put`` commits readings (and the source's cursor, in the same transaction) before it
  returns: only then may the source tell the device the reading was taken.
- Each device gets a stream sequence number per distinct reading (1, 2, 3...); a reading whose
  deterministic id was already taken keeps its first number and is not queued again.
- A reading leaves the outbox only when the cloud says it is durable on its side (``confirm``,
  from the ``stored`` messages of ``vigie.contract.stored_topic``), not on the broker's PUBACK:
  a broker killed before it saved its store loses what it acknowledged. Until then a reading
  survives crashes, ``kill -9`` and power loss (``synchronous=FULL``).
- The broker's PUBACK marks a batch's readings sent (``mark_sent``: the time and the number of
  sends, one statement per batch in a narrow table beside the readings, so the mark costs a
  page or two, not a rewrite of the readings' pages). ``unsent`` lists the readings never
  sent; ``due`` those sent and still unconfirmed that ``ResendPolicy`` says to send again.
  Sent readings still count in ``depth`` and against the capacity.
- The outbox is bounded: when full, ``put`` raises ``OutboxFull`` and takes nothing. Old
  readings are never dropped to make room. A full disk is the same refusal
  (``OutboxDiskFull``), not a crash.
- Deleting acknowledged rows needs a little disk too (WAL frames), and so does copying the WAL
  into the database. A ballast file beside the database reserves that room: when a delete meets
  a full disk, the ballast is released so the outbox can drain, and it is laid again once there
  is space.
- Disk accounting counts only what the filesystem has free. A put is taken only when, after it,
  the ballast's worth of disk would still be free, counting each new byte twice (its WAL frame
  and its page in the database). Pages freed by deletes go back to the filesystem
  (``auto_vacuum=INCREMENTAL``), so a drained outbox gives its disk back instead of keeping
  it as free pages that only the database could use.
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
-- readings the broker acknowledged, still waiting for the cloud's confirmation
CREATE TABLE IF NOT EXISTS sent (
  row INTEGER PRIMARY KEY, at REAL NOT NULL, sends INTEGER NOT NULL
);
"""


_INCREMENTAL = 2  # PRAGMA auto_vacuum value
_BODY_ESTIMATE = 512  # bytes of a reading's JSON body (about 350 for a plain one)
_ROW_OVERHEAD = 256  # bytes per reading beside its body: seen row, sent mark, indexes, cells
_TIGHT = 8  # a disk with less than this many times (reserve + write) free is "tight"
_SMALL_DELETE = 4  # rows per transaction when deleting on a full disk
_DELETE_CHUNK = 200  # rows per transaction when deleting what the cloud confirmed
_MARK_BYTES = 64  # bytes a sent mark takes: its row in ``sent`` and the page around it
_GIVE_BACK_PAGES = 256  # free pages inside the database before they go back to the disk


_CLOCK_BACK_S = 300.0  # a send time this far in the future: the clock went back; due now
_MAX_DOUBLINGS = 40


@dataclass(frozen=True, slots=True)
class ResendPolicy:
    """When a reading the broker acknowledged, and the cloud has not confirmed, is sent again.

    After its n-th send a reading waits ``timeout_s * 2**(n-1)``, at most ``max_s``: a broker
    or a cloud session that dropped it silently (a queue limit, an expired session). When the
    gateway has reconnected to the broker since that send, the wait starts from
    ``after_reconnect_s`` instead: a broker that restarted may have lost what it had not
    saved yet, so that copy goes again within seconds. Every copy doubles the next wait, so a
    cloud down for hours, or a link that keeps dropping, costs each reading about
    log2(outage / base) copies queued in the broker, not one per interval or per reconnect.
    """

    timeout_s: float = 600.0
    max_s: float = 21600.0
    after_reconnect_s: float = 5.0

    def wait(self, sends: int, reconnected: bool) -> float:
        base = self.after_reconnect_s if reconnected else self.timeout_s
        return min(base * 2.0 ** min(max(sends - 1, 0), _MAX_DOUBLINGS), self.max_s)

    def params(self, now: float, connected_at: float) -> dict[str, float]:
        return {"now": now, "connected": connected_at, "quick": self.after_reconnect_s,
                "slow": self.timeout_s, "cap": self.max_s, "back": _CLOCK_BACK_S}


# ``ResendPolicy.wait`` in SQL, over ``sent s``: when the reading is due to be sent again.
_DUE_AT = f"""(CASE WHEN s.at > :now + :back THEN :now
  ELSE s.at + min(CASE WHEN s.at < :connected THEN :quick ELSE :slow END
                  * (1 << min(max(s.sends - 1, 0), {_MAX_DOUBLINGS})), :cap) END)"""
_IN_JSON = "(SELECT value FROM json_each(?))"  # one statement, whatever the number of rows


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
        self._tight = False  # disk close to full: checkpoint after every write (_room_for)
        self.capacity = capacity
        self._seen_s = seen_days * 86400
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self._ballast.exists() and self._disk_free() < self._ballast_bytes:
                # Opening needs disk too (the WAL and its index are created anew).
                self._release_ballast()
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._incremental_vacuum_on()  # before WAL: a new file then needs no VACUUM
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

    def _incremental_vacuum_on(self) -> None:
        """Freed pages must be able to go back to the filesystem. A new database takes the
        setting at once; an older one needs a VACUUM, tried here and skipped (with a warning)
        when the disk cannot hold the copy it makes."""
        if int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0]) == _INCREMENTAL:
            return
        self._db.execute(f"PRAGMA auto_vacuum={_INCREMENTAL}")
        if int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0]) == _INCREMENTAL:
            return  # a new database: the pragma alone applies
        try:
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("outbox %s: could not switch to incremental vacuum (%s); freed pages "
                        "stay inside the database file", self.path, exc)

    def _disk_free(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _give_back(self, truncate_wal: bool) -> bool:
        """Return free pages to the filesystem and copy the WAL into the database (which
        shortens the file); with ``truncate_wal`` the WAL file is emptied too. True when the
        whole WAL is now in the database.

        Pages go back a few at a time, each round checkpointed, so the WAL never needs more
        disk than a fraction of the reserve. Failing for want of disk is not an error here:
        the caller measures the disk afterwards.
        """
        step = max(8, self._ballast_bytes // self._page_size // 4)
        mode = "TRUNCATE" if truncate_wal else "PASSIVE"
        done = self._checkpoint(mode)  # first: moving pages needs WAL room
        try:
            free = self._freelist()
            while free > 0:
                # executescript steps the pragma to its end; execute() would free one page
                self._db.executescript(f"PRAGMA incremental_vacuum({step});")
                done = self._checkpoint(mode)
                free, before = self._freelist(), free
                if free >= before:
                    break
        except sqlite3.Error as exc:
            log.debug("outbox: returning free pages failed: %s", exc)
            done = self._checkpoint(mode)
        return done

    def _checkpoint(self, mode: str) -> bool:
        """Copy the WAL into the database; True when all of it was copied."""
        try:
            busy, frames, copied = self._db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:
            log.debug("outbox: checkpoint failed: %s", exc)
            return False
        return bool(busy == 0 and frames == copied)

    def _freelist(self) -> int:
        return int(self._db.execute("PRAGMA freelist_count").fetchone()[0])

    def _room_for(self, need: int) -> bool:
        """Whether ``need`` more bytes can be written with the reserve still free after it.

        The common case is one statvfs. When the disk is short, the reserve is lifted for a
        moment, so that SQLite has room to give free pages and the WAL back to the
        filesystem, and then laid again.

        On a disk close to full (``_tight``) every write is checkpointed at once: a page the
        database will need must take its disk while this check still holds, not later, when
        a checkpoint that cannot grow the file would leave the WAL growing with every delete.
        """
        if self._ballast_bytes <= 0:
            return True
        free = self._disk_free()
        self._tight = free < _TIGHT * (self._ballast_bytes + need)
        if self._ballast.exists() and free >= self._ballast_bytes + need:
            return True
        self._ballast.unlink(missing_ok=True)
        self._give_back(truncate_wal=True)
        return self._lay_ballast() and self._disk_free() >= self._ballast_bytes + need

    def _release_ballast(self) -> bool:
        if not self._ballast.exists():
            return False
        self._ballast.unlink()
        log.warning("outbox disk full: released the %d-byte reserve so acknowledged readings "
                    "can be deleted (%s)", self._ballast_bytes, self.path.parent)
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
            if not self._room_for(2 * len(drafts) * (_BODY_ESTIMATE + _ROW_OVERHEAD)):
                raise OutboxDiskFull(self._depth, "less free space than the reserve")
            try:
                taken = self._put(drafts, cursor)
            except sqlite3.Error as exc:
                if _disk_full(exc):
                    raise OutboxDiskFull(self._depth, str(exc)) from exc
                raise OutboxError(f"outbox write failed: {exc}") from exc
            self._settle()
            return taken

    def _settle(self) -> None:
        """After a write on a tight disk: the new pages must reach the database file now."""
        if self._tight and not self._give_back(truncate_wal=False):
            # The new pages could not reach the database file: spend the reserve on them
            # now, or the WAL would grow with every delete behind a stuck checkpoint.
            self._release_ballast()
            self._give_back(truncate_wal=False)

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
        """The oldest readings never sent (acknowledged by the broker), after ``after_row``."""
        return self.unsent(limit, after_row)[0]

    def unsent(self, limit: int, after_row: int = 0) -> tuple[list[Pending], int]:
        """``pending``, and the row up to which the outbox was looked at: past it, every row
        is either returned or sent, so the next call may start there (no scan again over the
        readings sent and waiting for the cloud)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT row, body FROM outbox o WHERE row > ? AND NOT EXISTS "
                    "(SELECT 1 FROM sent s WHERE s.row = o.row) ORDER BY row LIMIT ?",
                    (after_row, limit)).fetchall()
                if len(rows) == limit:
                    upto = int(rows[-1][0])
                else:  # under the lock: no put can add a row between the two queries
                    last = self._db.execute("SELECT max(row) FROM outbox").fetchone()[0]
                    upto = max(after_row, int(last or 0))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
        return [Pending(int(r), json.loads(b)) for r, b in rows], upto

    def mark_sent(self, rows: Iterable[int], at: float | None = None) -> int:
        """Record that the broker acknowledged these rows (their time, one more send), in one
        statement; rows already confirmed and deleted are skipped. Returns how many.

        The mark takes disk like a put: refused (OutboxError) when it would eat into the
        reserve, which is kept for the deletes that drain a full outbox; the caller then
        keeps the rows in memory."""
        wanted = sorted(set(rows))
        when = time.time() if at is None else at
        with self._lock:
            if not self._room_for(2 * len(wanted) * _MARK_BYTES):
                raise OutboxError(f"outbox disk full: {len(wanted)} readings not marked sent")
            try:
                marked = int(self._db.execute(
                    f"INSERT INTO sent(row, at, sends) SELECT row, ?, 1 FROM outbox "
                    f"WHERE row IN {_IN_JSON} ON CONFLICT(row) DO UPDATE SET "
                    f"at = excluded.at, sends = sent.sends + 1",
                    (when, json.dumps(wanted))).rowcount)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox: marking readings sent failed: {exc}") from exc
            self._settle()
            return marked

    def due(self, policy: ResendPolicy, now: float, connected_at: float, limit: int,
            after_row: int = 0) -> list[Pending]:
        """Sent readings the cloud has not confirmed and ``policy`` says to send again now,
        oldest first, after ``after_row``; ``connected_at`` is when the current broker
        connection began (``time.time()``, like ``now`` and the send times)."""
        params = {**policy.params(now, connected_at), "after": after_row, "limit": limit}
        with self._lock:
            try:
                rows = self._db.execute(
                    f"SELECT o.row, o.body FROM sent s JOIN outbox o ON o.row = s.row "
                    f"WHERE s.row > :after AND {_DUE_AT} <= :now ORDER BY s.row LIMIT :limit",
                    params).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
        return [Pending(int(r), json.loads(b)) for r, b in rows]

    def next_due(self, policy: ResendPolicy, now: float, connected_at: float) -> float | None:
        """When the first sent, unconfirmed reading falls due (None: there is none)."""
        with self._lock:
            try:
                at = self._db.execute(f"SELECT min({_DUE_AT}) FROM sent s",
                                      policy.params(now, connected_at)).fetchone()[0]
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
        return None if at is None else float(at)

    def unconfirmed(self) -> int:
        """Readings sent (acknowledged by the broker) and not yet confirmed by the cloud."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM sent").fetchone()[0])

    def confirm(self, ids: Iterable[str]) -> int:
        """Delete the readings the cloud confirmed durable; ids the outbox does not hold
        (confirmed before, or never taken here) are ignored. Returns how many went."""
        wanted = json.dumps(list(dict.fromkeys(ids)))
        with self._lock:
            try:
                rows = [int(r[0]) for r in self._db.execute(
                    f"SELECT row FROM outbox WHERE id IN {_IN_JSON}", (wanted,))]
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
        # a confirmation may name thousands: delete them a batch's worth per transaction, so
        # that no delete needs more WAL than one batch's did (a full disk, the reserve)
        return sum(self.remove(rows[i:i + _DELETE_CHUNK])
                   for i in range(0, len(rows), _DELETE_CHUNK))

    def get(self, rows: Iterable[int]) -> list[Pending]:
        wanted = sorted(set(rows))
        with self._lock:
            try:
                found = [self._db.execute("SELECT row, body FROM outbox WHERE row=?",
                                          (r,)).fetchone() for r in wanted]
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
        return [Pending(int(r), json.loads(b)) for r, b in (f for f in found if f)]

    def remove(self, rows: Iterable[int]) -> int:
        """Forget readings (the cloud confirmed them: ``confirm``)."""
        batch = [(r,) for r in rows]
        with self._lock:
            try:
                removed = self._delete(batch)
            except sqlite3.Error as exc:
                if not _disk_full(exc):
                    raise OutboxError(f"outbox delete failed: {exc}") from exc
                removed = self._delete_on_full_disk(batch, exc)
            self._depth -= removed
            spent = self._ballast_bytes > 0 and not self._ballast.exists()
            if spent or self._tight or self._freelist() >= _GIVE_BACK_PAGES:
                self._give_back(truncate_wal=False)
            if spent:
                self._lay_ballast()  # as soon as it fits: the next delete may need it
        return removed

    def _delete_on_full_disk(self, batch: list[tuple[int]], exc: sqlite3.Error) -> int:
        """A delete that met a full disk: free the reserve and try again; then empty the
        WAL and delete a few rows per transaction, each one checkpointed, so that no single
        transaction needs more disk than a handful of pages. Only when that fails too is the
        delete reported as failed (the rows stay queued and are sent again)."""
        if self._release_ballast():
            try:
                return self._delete(batch)
            except sqlite3.Error as again:
                exc = again
        removed = 0
        try:
            for i in range(0, len(batch), _SMALL_DELETE):
                self._give_back(truncate_wal=True)
                removed += self._delete(batch[i:i + _SMALL_DELETE])
        except sqlite3.Error as again:
            self._depth -= removed
            raise OutboxError(f"outbox delete failed after {removed} of {len(batch)} rows: "
                              f"{again}") from exc
        return removed

    def _delete(self, batch: list[tuple[int]]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.executemany("DELETE FROM outbox WHERE row=?", batch).rowcount
            db.executemany("DELETE FROM sent WHERE row=?", batch)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return removed

    def prune_seen(self, now: float | None = None) -> int:
        """Forget the ids of readings taken more than ``seen_days`` ago and already sent (the
        memory that recognises a device's resends); what is still queued is kept, whatever
        its age. Returns how many were forgotten."""
        limit = (now or time.time()) - self._seen_s
        with self._lock:
            try:
                cur = self._db.execute(
                    "DELETE FROM seen WHERE taken_at < ? AND id NOT IN (SELECT id FROM outbox)",
                    (limit,))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox: forgetting old reading ids failed: {exc}") from exc
            if self._freelist() >= _GIVE_BACK_PAGES:
                self._give_back(truncate_wal=False)
        return int(cur.rowcount)

    def taken_ids(self) -> list[str]:
        """Every reading id this outbox remembers taking (for audits and the demo)."""
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT id FROM seen")]

    def taken_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
