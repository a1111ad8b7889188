from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.errors import OutboxFull
from gateway.outbox import Outbox
from vigie.contract import Kind, Reading

T = datetime(2026, 1, 1, tzinfo=UTC)


def draft(rid: int, device: str = "d1") -> Reading:
    return Reading(id=f"{rid:032x}", gateway_id="gw", device_id=device, patient_id=None,
                   stream_seq=0, kind=Kind.WEIGHT, value=80.0, unit="kg", measured_at=T,
                   received_at=T, device_time=None, clock_offset_s=0.0, time_zone=None,
                   time_trusted=False)


def test_sequence_numbers_and_duplicates(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    taken = box.put([draft(1), draft(2), draft(3, "d2"), draft(2)])
    assert [r.stream_seq for r in taken] == [1, 2, 1, 2]
    assert box.depth == 3
    again = box.put([draft(1), draft(4)])
    assert [r.stream_seq for r in again] == [1, 3] and box.depth == 4


def test_full_outbox_refuses_everything_and_drops_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", capacity=3)
    box.put([draft(1), draft(2)], cursor=("src", "2"))
    with pytest.raises(OutboxFull, match="2/3"):
        box.put([draft(3), draft(4)], cursor=("src", "4"))
    assert box.depth == 2 and box.cursor("src") == "2"
    assert [p.body["id"] for p in box.pending(10)] == [f"{1:032x}", f"{2:032x}"]
    box.put([draft(1)])  # a duplicate needs no room
    box.remove([p.row for p in box.pending(1)])
    box.put([draft(3)], cursor=("src", "3"))
    assert box.depth == 2 and box.cursor("src") == "3"


def test_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.put([draft(i) for i in range(10)], cursor=("src", "10"))
    box.remove([p.row for p in box.pending(4)])
    box.close()
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.depth == 6 and box.cursor("src") == "10"
    assert box.put([draft(11)])[0].stream_seq == 11



def test_old_ids_are_forgotten_but_never_those_still_queued(tmp_path: Path) -> None:
    """The memory of sent readings lasts ``seen_days``; a reading still waiting for the broker
    is remembered whatever its age, so its resend is still recognised."""
    box = Outbox(tmp_path / "o.sqlite3", seen_days=30)
    box.put([draft(1), draft(2), draft(3)])
    box.remove([p.row for p in box.pending(2)])  # 1 and 2 sent; 3 still queued
    later = time.time() + 31 * 86400
    assert box.prune_seen(now=time.time()) == 0  # nothing is old yet
    assert box.prune_seen(now=later) == 2
    assert box.taken_count() == 1
    again = box.put([draft(3)])  # the queued one, sent again by its device: still known
    assert [r.stream_seq for r in again] == [3] and box.depth == 1
    fresh = box.put([draft(1)])  # forgotten: taken as new (the cloud's writes are idempotent)
    assert [r.stream_seq for r in fresh] == [4] and box.depth == 2

class OutboxMachine(RuleBasedStateMachine):
    """Model: queued readings in order, some of them sent (acknowledged by the broker) and
    still queued until the cloud confirms them, per-device numbering, capacity never
    exceeded."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "o.sqlite3"
        self.box = Outbox(self.path, capacity=8)
        self.pending: list[str] = []
        self.sent: set[str] = set()  # pending, acknowledged by the broker
        self.seq: dict[str, int] = {}  # id -> stream seq
        self.last: dict[str, int] = {}  # device -> last seq

    def teardown(self) -> None:
        self.box.close()
        self.dir.cleanup()

    @rule(ids=st.lists(st.integers(0, 30), min_size=1, max_size=4),
          device=st.sampled_from(["a", "b"]))
    def put(self, ids: list[int], device: str) -> None:
        drafts = [draft(i, device if i % 2 else "a") for i in ids]
        new = list(dict.fromkeys(d.id for d in drafts if d.id not in self.seq))
        if len(self.pending) + len(new) > 8:
            with pytest.raises(OutboxFull):
                self.box.put(drafts)
            return
        taken = self.box.put(drafts)
        for d, r in zip(drafts, taken, strict=True):
            if d.id not in self.seq:
                self.last[r.device_id] = self.last.get(r.device_id, 0) + 1
                self.seq[d.id] = self.last[r.device_id]
                self.pending.append(d.id)
            assert r.stream_seq == self.seq[d.id]

    def unsent(self) -> list[str]:
        return [i for i in self.pending if i not in self.sent]

    @precondition(lambda self: self.unsent())
    @rule(n=st.integers(1, 5))
    def ack_oldest(self, n: int) -> None:
        rows = self.box.pending(n)
        assert [p.body["id"] for p in rows] == self.unsent()[:n]
        assert self.box.remove(p.row for p in rows) == len(rows)
        for p in rows:
            self.pending.remove(str(p.body["id"]))

    @precondition(lambda self: self.unsent())
    @rule(n=st.integers(1, 5))
    def broker_acknowledges_oldest(self, n: int) -> None:
        rows = self.box.pending(n)
        assert self.box.mark_sent(p.row for p in rows) == len(rows)
        self.sent.update(str(p.body["id"]) for p in rows)

    @rule(picks=st.lists(st.integers(0, 40), max_size=6))
    def cloud_confirms(self, picks: list[int]) -> None:
        """Ids sent or not, taken or never seen (a stale or foreign confirmation)."""
        named = [f"{i:032x}" for i in picks]
        gone = {i for i in named if i in self.pending}
        assert self.box.confirm(named) == len(gone)
        self.pending = [i for i in self.pending if i not in gone]
        self.sent -= gone

    @rule()
    def crash_and_reopen(self) -> None:
        self.box.close()
        self.box = Outbox(self.path, capacity=8)

    @invariant()
    def depth_matches(self) -> None:
        assert self.box.depth == len(self.pending) <= 8
        assert [p.body["id"] for p in self.box.pending(100)] == self.unsent()
        assert self.box.unconfirmed() == len(self.sent)


TestOutboxMachine = OutboxMachine.TestCase
TestOutboxMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
