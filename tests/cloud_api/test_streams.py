from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

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
