"""The outbox on a real, small, full filesystem (a tmpfs mounted for each case).

What must hold however puts, deletes, restarts and other writers on the same disk interleave:
a delete of acknowledged readings never fails for want of disk (or the outbox could never
drain), a refused put takes nothing, and once the outbox has drained it takes readings again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.config import MIN_RESERVE_BYTES
from gateway.errors import OutboxDiskFull, OutboxError
from gateway.outbox import Outbox
from tests.gateway.test_outbox import draft
from vigie.contract import Reading

RESERVE = MIN_RESERVE_BYTES  # the smallest the configuration accepts
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


def reading(n: int) -> Reading:
    """Readings with hash-like ids, as real ones are: inserts land all over the indexes."""
    return draft(int(hashlib.sha256(str(n).encode()).hexdigest()[:32], 16), f"dev-{n % 7}")


class Tmpfs:
    def __init__(self, size: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="vigie-outbox-disk-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
                       check=True, capture_output=True)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, name: str, size: int) -> None:
        """Another program writing on the same disk, until it is full or ``size`` written."""
        fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, b"x" * size)
        except OSError:
            pass  # the disk is full: that is the point
        finally:
            os.close(fd)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        self.path.rmdir()


@pytest.fixture
def tmpfs() -> Iterator[Tmpfs]:
    disk = Tmpfs("1536k")
    yield disk
    disk.close()


def fill_until_refused(box: Outbox) -> int:
    """Put readings 50 at a time until the disk refuses them; how many were taken."""
    n = 0
    with pytest.raises(OutboxDiskFull):
        while True:
            box.put([reading(n + i) for i in range(50)])
            n += 50
    return n


def oldest_ids(box: Outbox, n: int) -> list[str]:
    """The ids of the ``n`` oldest readings queued, sent or not."""
    return [r[0] for r in box._db.execute("SELECT id FROM outbox ORDER BY row LIMIT ?", (n,))]


def drain(box: Outbox) -> None:
    """The cloud confirms everything queued (the only way readings leave the outbox)."""
    while ids := oldest_ids(box, 50):
        box.confirm(ids)


def _drive(tmpfs: Tmpfs, box: Outbox, rng: random.Random,
           leave: Callable[[float], bool], total: int = 6000) -> None:
    """Puts of ``total`` readings and another writer filling and emptying the disk, in a
    random order; ``leave(roll)`` takes readings out (or marks them) for rolls it wants and
    says whether it did. Ends when every reading got in and left; the disk must have filled."""
    taken, refused = 0, 0
    for _ in range(20_000):
        if taken == total and box.depth == 0:
            break
        roll = rng.random()
        if roll < 0.05:
            other = tmpfs.path / "other.log"
            if other.exists():
                other.unlink()
            else:
                tmpfs.fill("other.log", rng.choice([4096, 65536, 1 << 20]))
        elif box.depth and leave(roll):
            pass
        elif taken < total:
            n = min(rng.choice([1, 10, 100]), total - taken)
            try:
                box.put([reading(taken + i) for i in range(n)])
            except OutboxDiskFull:
                refused += 1
            else:
                taken += n
    assert refused > 0, "the disk never filled up: this case tests nothing"
    assert (taken, box.depth) == (total, 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interleaved_puts_and_deletes_never_stick(tmpfs: Tmpfs, seed: int) -> None:
    """Puts, acknowledgements and another writer filling the disk, in a random order: the
    disk fills up (puts are refused), no delete ever fails, and every reading gets in."""
    rng = random.Random(seed)
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)

    def leave(roll: float) -> bool:
        if roll >= 0.5:
            return False
        box.remove([p.row for p in box.pending(rng.choice([10, 50, 200]))])
        return True

    _drive(tmpfs, box, rng, leave)
    assert box.taken_count() == 6000


@pytest.mark.parametrize("seed", [1, 2])
def test_marks_and_confirmations_never_stick(tmpfs: Tmpfs, seed: int) -> None:
    """The same with the end-to-end acknowledgement: PUBACKs mark readings sent (a mark may be
    refused when it would eat into the reserve, never fail otherwise), and the cloud's
    confirmations, of thousands of readings at once, always delete."""
    rng = random.Random(seed)
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)

    def leave(roll: float) -> bool:
        if roll < 0.3:
            with contextlib.suppress(OutboxError):  # no room for the mark: kept in memory
                box.mark_sent([p.row for p in box.pending(rng.choice([10, 50, 200]))])
            return True
        if roll < 0.5:
            box.confirm(oldest_ids(box, rng.choice([10, 200, 3000])))
            return True
        return False

    _drive(tmpfs, box, rng, leave)
    assert box.unconfirmed() == 0


def test_a_full_outbox_sent_then_confirmed_at_once_drains(tmpfs: Tmpfs) -> None:
    """A full disk, every reading then acknowledged by the broker batch after batch, and the
    cloud confirming them all in one message: the marks must not spend the reserve that the
    deletes need (they are refused instead), and the deletes go a batch per transaction."""
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)
    n = fill_until_refused(box)
    after = 0
    while batch := [p.row for p in box.pending(200, after)]:
        after = batch[-1]
        with contextlib.suppress(OutboxError):  # refused: the publisher keeps them in memory
            box.mark_sent(batch)
    assert box.confirm(oldest_ids(box, n)) == n
    assert box.depth == 0 and box.unconfirmed() == 0
    box.put([reading(10**6)])  # taken again


def test_a_drained_outbox_gives_its_disk_back(tmpfs: Tmpfs) -> None:
    empty = tmpfs.free()
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)
    fill_until_refused(box)
    assert tmpfs.free() < RESERVE + 100 * 1024  # full, but for the reserve's worth
    drain(box)
    box.put([reading(10**6)])  # taken again
    # What stays used: the dedupe memory of what was taken, the reserve, a little WAL.
    seen = box.taken_count() * 200
    assert tmpfs.free() > empty - seen - RESERVE - 300 * 1024


def test_restart_on_a_full_disk_still_drains(tmpfs: Tmpfs) -> None:
    """Closing the outbox deletes its WAL: after a restart on a full disk, the first delete
    needs disk it no longer has. The reserve must cover it."""
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)
    n = fill_until_refused(box)
    box.close()
    tmpfs.fill("other.log", 1 << 22)  # and another program takes the last bytes
    assert tmpfs.free() == 0
    box = Outbox(tmpfs.path / "o.sqlite3", ballast_bytes=RESERVE)
    assert box.depth == n
    drain(box)
    assert box.depth == 0
    (tmpfs.path / "other.log").unlink()
    box.put([reading(10**6)])


def test_an_outbox_from_before_incremental_vacuum_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as db:  # the layout an older gateway left behind
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL)")
        db.execute("INSERT INTO cursors VALUES ('replay', '42')")
    box = Outbox(path)
    assert box.cursor("replay") == "42"
    assert box._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


class OutboxOnSmallDisk(RuleBasedStateMachine):
    """Any order of puts, deletes, sent marks, confirmations, restarts and disk hogs: deletes
    never fail, refused puts take nothing, and after the hog goes and the outbox drains, it
    takes readings again."""

    def __init__(self) -> None:
        super().__init__()
        self.disk = Tmpfs("1536k")
        self.path = self.disk.path / "o.sqlite3"
        self.box = Outbox(self.path, ballast_bytes=RESERVE)
        self.next = 0
        self.queued: set[int] = set()  # reading numbers taken and not yet deleted

    @rule(n=st.integers(1, 120))
    def put(self, n: int) -> None:
        batch = range(self.next, self.next + n)
        try:
            self.box.put([reading(i) for i in batch])
        except OutboxDiskFull:
            return
        self.queued.update(batch)
        self.next += n

    def no_room_at_all(self) -> bool:
        """The reserve already spent and less than its worth free: only then may the outbox
        fail (loudly) to delete or to open; it recovers once the hog is gone."""
        return not self.path.with_name("o.sqlite3.reserve").exists() \
            and self.disk.free() < RESERVE

    @rule(n=st.integers(1, 200))
    def acknowledge(self, n: int) -> None:
        try:
            self.box.remove([p.row for p in self.box.pending(n)])
        except OutboxError:
            assert self.no_room_at_all()

    @rule(n=st.integers(1, 200))
    def broker_acknowledges(self, n: int) -> None:
        with contextlib.suppress(OutboxError):  # a mark may be refused on a tight disk
            self.box.mark_sent([p.row for p in self.box.pending(n)])

    @rule(n=st.integers(1, 3000))
    def cloud_confirms(self, n: int) -> None:
        try:
            self.box.confirm(oldest_ids(self.box, n))
        except OutboxError:
            assert self.no_room_at_all()

    @rule(size=st.sampled_from([4096, 65536, 1 << 20]))
    def hog(self, size: int) -> None:
        self.disk.fill("hog", size)

    @rule()
    def free_hog(self) -> None:
        (self.disk.path / "hog").unlink(missing_ok=True)

    @rule()
    def restart(self) -> None:
        self.box.close()
        try:
            self.box = Outbox(self.path, ballast_bytes=RESERVE)
        except OutboxError:
            assert self.no_room_at_all()
            self.free_hog()
            self.box = Outbox(self.path, ballast_bytes=RESERVE)

    @invariant()
    def depth_is_what_is_stored(self) -> None:
        stored = self.box._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        assert self.box.depth == stored
        orphans = self.box._db.execute(
            "SELECT COUNT(*) FROM sent WHERE row NOT IN (SELECT row FROM outbox)").fetchone()[0]
        assert orphans == 0, "a sent mark outlived its reading"

    def teardown(self) -> None:
        try:
            (self.disk.path / "hog").unlink(missing_ok=True)
            drain(self.box)
            self.box.put([reading(10**7)])  # takes readings again
            assert self.box.taken_count() == self.next + 1
            self.box.close()
        finally:
            self.disk.close()


OutboxOnSmallDisk.TestCase.settings = settings(max_examples=25, stateful_step_count=40,
                                               deadline=None)
test_outbox_on_a_small_disk = OutboxOnSmallDisk.TestCase
