"""The contract's bounds on what crosses the wire: size, nesting, numbers, strings, time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigie.contract import (
    FUTURE_ALLOWANCE,
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_BYTES,
    TIME_FLOOR,
    ContractError,
    check_int,
    decode_batch,
    loads_bounded,
    parse_iso,
    reading_from_json,
    time_problem,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
GOOD = {"id": "0" * 31 + "1", "device": "d1", "patient": "p1", "seq": 1, "kind": "glucose",
        "value": 50.0, "unit": "mg/dL", "measured_at": "2026-11-01T10:00:00Z",
        "received_at": "2026-11-01T10:00:01Z", "device_time": None, "clock_offset_s": 0,
        "tz": None, "time_trusted": True, "flags": []}


def _code(payload: bytes) -> str:
    with pytest.raises(ContractError) as info:
        loads_bounded(payload)
    return info.value.code


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    assert _code(b"[" * 5000) == "too-deep"  # the C parser's own limit
    assert _code(b"[" * 5000 + b"]" * 5000) == "too-deep"
    assert _code(json.dumps({"a": [[[[[[[[1]]]]]]]]}).encode()) == "too-deep"
    shallow: dict[str, object] = {"readings": [{"flags": []}]}
    assert loads_bounded(json.dumps(shallow).encode()) == shallow


def test_depth_limit_is_exact() -> None:
    at_limit: object = 1
    for _ in range(MAX_JSON_DEPTH):
        at_limit = [at_limit]
    assert loads_bounded(json.dumps(at_limit).encode()) == at_limit
    assert _code(json.dumps([at_limit]).encode()) == "too-deep"


def test_size_and_number_limits() -> None:
    assert _code(b" " * (MAX_PAYLOAD_BYTES + 1)) == "too-large"
    assert _code(b"1" * 5000) == "not-json"  # over Python's integer digit limit
    assert _code(b"\xff\xfe") == "not-json"
    with pytest.raises(ContractError, match=r"out of range|finite"):
        reading_from_json(dict(GOOD, value=10**400), "gw-1")
    with pytest.raises(ContractError, match="finite"):
        reading_from_json(dict(GOOD, value=float("inf")), "gw-1")
    with pytest.raises(ContractError, match="seq"):
        reading_from_json(dict(GOOD, seq=MAX_INT + 1), "gw-1")
    with pytest.raises(ContractError, match="longer than"):
        reading_from_json(dict(GOOD, unit="x" * 10_000), "gw-1")
    assert check_int(MAX_INT, "n") == MAX_INT
    with pytest.raises(ContractError):
        check_int(True, "n")


def test_batch_reading_count_is_bounded() -> None:
    body = {"v": 1, "gateway": "gw-1", "sent_at": "2026-11-01T10:00:02Z",
            "readings": [{}] * 5001}
    with pytest.raises(ContractError, match="over the limit"):
        decode_batch(json.dumps(body).encode(), "gw-1")


def test_extreme_dates_are_contract_errors() -> None:
    for text in ("0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "nonsense"):
        with pytest.raises(ContractError):
            parse_iso(text)


def test_time_problem() -> None:
    hour = timedelta(hours=1)
    assert time_problem(NOW - hour, NOW, NOW) is None
    assert time_problem(NOW + FUTURE_ALLOWANCE, NOW + FUTURE_ALLOWANCE, NOW) is None
    assert "in the future" in str(time_problem(NOW, NOW + FUTURE_ALLOWANCE + hour, NOW))
    assert "after its receipt" in str(time_problem(NOW + 2 * hour, NOW, NOW))
    far = datetime(2200, 1, 1, tzinfo=UTC)
    assert time_problem(far, NOW, NOW) is not None
    assert "before" in str(time_problem(TIME_FLOOR - hour, NOW, NOW))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_loads_bounded_is_total(payload: bytes) -> None:
    try:
        loads_bounded(payload)
    except ContractError as exc:
        assert exc.code in ("too-large", "too-deep", "not-json")
