from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from cloud_api import streams
from cloud_api.db import Gap, make_engine, make_sessions

T = datetime(2026, 1, 1, tzinfo=UTC)


def _missing(gaps: list[Gap]) -> set[int]:
    return {s for g in gaps for s in range(g.first_seq, g.last_seq + 1)}


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(1, 60), min_size=1),
       st.randoms(use_true_random=False), st.integers(1, 5))
def test_open_gaps_are_exactly_the_numbers_not_seen(seen: set[int], rnd: random.Random,
                                                    batch: int) -> None:
    order = sorted(seen)
    rnd.shuffle(order)
    order += order[: len(order) // 3]  # resends
    sessions = make_sessions(make_engine("sqlite://"))
    with sessions.begin() as s:
        for i in range(0, len(order), batch):
            streams.record(s, "gw", "dev", order[i:i + batch], T)
    with sessions() as s:
        gaps = streams.open_gaps(s)
        assert _missing(gaps) == set(range(1, max(seen) + 1)) - seen
        assert all(g.first_seq <= g.last_seq for g in gaps)


def test_a_batch_of_devices_is_accounted_for_in_one_query() -> None:
    """``record_batch`` does what ``record`` does device by device, reading the batch's
    streams in one query, not one per device (a late arrival or a resend still looks its
    gap up: cost of that reading, not of the population)."""
    engine = make_engine("sqlite://")
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        streams.record_batch(s, {("gw", f"d{i}"): [1, 2] for i in range(300)}, T)
    selects: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    with sessions.begin() as s:
        batch = {("gw", f"d{i}"): [5, 3, 5] for i in range(300)}  # 4 missing
        batch[("gw", "new")] = [2]
        streams.record_batch(s, batch, T)
    assert len(selects) == 1
    with sessions() as s:
        gaps = {(g.device_id, g.first_seq, g.last_seq) for g in streams.open_gaps(s)}
    assert gaps == {(f"d{i}", 4, 4) for i in range(300)} | {("new", 1, 1)}
    with sessions.begin() as s:
        streams.record_batch(s, {("gw", "d0"): [4], ("gw", "d1"): [6]}, T)  # late: filled
    with sessions() as s:
        gaps = {(g.device_id, g.first_seq, g.last_seq) for g in streams.open_gaps(s)}
    assert ("d0", 4, 4) not in gaps and ("d1", 4, 4) in gaps
