"""The decode stage is total: every byte sequence on every gateway topic ends as work or as
a refusal with a known code, never as an exception, and refusals keep the payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_api.stages.decode import decode_message
from cloud_api.stages.refusal import PAYLOAD_KEEP, code_of
from cloud_api.stages.work import Work

NOW = datetime(2026, 11, 1, 10, 5, tzinfo=UTC)
CODES = {"topic", "too-large", "too-deep", "not-json", "schema", "implausible", "time",
         "status"}
TOPICS = [f"vigie/v1/gateways/gw-1/{s}" for s in ("observations", "status", "alarms")]


def _reading(**over: object) -> dict[str, object]:
    return {"id": "0" * 31 + "1", "device": "d1", "patient": "p1", "seq": 1, "kind": "glucose",
            "value": 50.0, "unit": "mg/dL", "measured_at": "2026-11-01T10:00:00Z",
            "received_at": "2026-11-01T10:00:01Z", "device_time": None, "clock_offset_s": 0,
            "tz": None, "time_trusted": True, "flags": [], **over}


def _batch(*readings: object) -> bytes:
    return json.dumps({"v": 1, "gateway": "gw-1", "sent_at": "2026-11-01T10:00:02Z",
                       "readings": list(readings)}).encode()


def _decode(topic: str, payload: bytes) -> Work:
    work = Work()
    decode_message(topic, payload, NOW, work)
    return work


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TOPICS), st.binary(max_size=200) | json_trees.map(
    lambda t: json.dumps(t).encode()))
def test_any_payload_ends_as_work_or_a_refusal(topic: str, payload: bytes) -> None:
    work = _decode(topic, payload)
    assert {code_of(q) for q in work.quarantine} <= CODES
    for q in work.quarantine:
        assert len(q.payload) <= PAYLOAD_KEEP


def test_deep_nesting_and_huge_numbers_are_refused() -> None:
    for payload in (b"[" * 100_000, b'{"v":1,"gateway":"gw-1","readings":' + b"[" * 3000,
                    _batch(_reading(value=[[[[[[[[[[1]]]]]]]]]])),
                    _batch(_reading(seq=2**64)), _batch(_reading(value=10**300 * 10**300))):
        work = _decode(TOPICS[0], payload)
        assert not work.readings and len(work.quarantine) == 1, payload[:80]


def test_a_status_outbox_beyond_64_bits_is_refused_and_a_site_is_never_taken() -> None:
    work = _decode(TOPICS[1], json.dumps({"state": "online", "outbox": 2**64}).encode())
    assert work.statuses == [] and code_of(work.quarantine[0]) == "schema"
    work = _decode(TOPICS[1], json.dumps({"state": "online", "outbox": 3,
                                          "site": "another-site"}).encode())
    assert work.statuses == [("gw-1", {"state": "online", "outbox": 3})]


def test_far_future_and_too_old_times_are_refused_with_the_time_code() -> None:
    work = _decode(TOPICS[0], _batch(
        _reading(), _reading(id="0" * 31 + "2", measured_at="2200-01-01T00:00:00Z"),
        _reading(id="0" * 31 + "3", received_at="2200-01-01T00:00:00Z",
                 measured_at="2200-01-01T00:00:00Z"),
        _reading(id="0" * 31 + "4", measured_at="1970-01-01T00:00:00Z")))
    assert [r.id for r, _ in work.readings] == ["0" * 31 + "1"]
    assert [code_of(q) for q in work.quarantine] == ["time"] * 3
    assert [q.reading_id for q in work.quarantine] == ["0" * 31 + c for c in "234"]


def test_a_topic_of_no_gateway_is_refused() -> None:
    work = _decode("vigie/v1/gateways/gw-1/other", b"{}")
    assert [code_of(q) for q in work.quarantine] == ["topic"]
    work = _decode("vigie/v1/gateways/bad id/observations", b"{}")
    assert len(work.quarantine) == 1
