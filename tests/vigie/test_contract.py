from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigie.contract import (
    Batch,
    ContractError,
    Kind,
    Reading,
    check_id,
    decode_batch,
    gateway_from_topic,
    observations_topic,
    plausibility_problem,
    reading_from_json,
    reading_id,
    to_canonical,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC))


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    return Reading(
        id=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)), gateway_id="gw-1",
        device_id=draw(ids), patient_id=draw(st.none() | ids), stream_seq=draw(
            st.integers(0, 2**40)), kind=draw(st.sampled_from(list(Kind))),
        value=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        unit=draw(st.text(max_size=8)), measured_at=draw(times), received_at=draw(times),
        device_time=draw(st.none() | st.text(max_size=30)),
        clock_offset_s=draw(st.floats(-1e6, 1e6)), time_zone=draw(st.none() | st.text(
            max_size=20)), time_trusted=draw(st.booleans()),
        original_value=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        original_unit=draw(st.none() | st.text(max_size=8)),
        device_sequence=draw(st.none() | st.integers(0, 65535)),
        flags=tuple(draw(st.lists(st.text(max_size=10), max_size=3))))


@settings(max_examples=200, deadline=None)
@given(readings())
def test_reading_json_round_trip(r: Reading) -> None:
    wire = json.loads(json.dumps(r.to_json()))
    assert reading_from_json(wire, "gw-1") == r


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=5)
                       | st.floats() | st.booleans(), max_size=8))
def test_reading_from_json_rejects_garbage_cleanly(obj: dict[str, object]) -> None:
    with pytest.raises(ContractError):
        reading_from_json(obj, "gw-1")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_batch_never_crashes_on_bytes(payload: bytes) -> None:
    """Any bytes give a batch or a ContractError; anything else escapes and fails."""
    with contextlib.suppress(ContractError):
        decode_batch(payload, "gw-1")


def test_batch_envelope_round_trip_and_gateway_mismatch() -> None:
    b = Batch("gw-1", datetime(2026, 1, 1, tzinfo=UTC), ({"x": 1},), site="ehpad-3")
    assert decode_batch(b.encode(), "gw-1") == b
    with pytest.raises(ContractError, match="does not match topic"):
        decode_batch(b.encode(), "gw-2")


def test_reading_id_is_deterministic_and_content_bound() -> None:
    a = reading_id("scale-1", "weight", "2026-01-01T07:00:00", 12, 81.5, "kg")
    assert a == reading_id("scale-1", "weight", "2026-01-01T07:00:00", 12, 81.5, "kg")
    assert len(a) == 32
    assert a != reading_id("scale-1", "weight", "2026-01-01T07:00:00", 13, 81.5, "kg")
    assert a != reading_id("scale-2", "weight", "2026-01-01T07:00:00", 12, 81.5, "kg")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # nothing from the device distinguishes two readings: the receive time does
    assert reading_id("d", "weight", None, None, 80.0, "kg", t0) != reading_id(
        "d", "weight", None, None, 80.0, "kg", t0 + timedelta(seconds=1))


def test_topics_and_ids() -> None:
    assert observations_topic("gw-7") == "vigie/v1/gateways/gw-7/observations"
    assert gateway_from_topic("vigie/v1/gateways/gw-7/observations") == "gw-7"
    for bad in ("", "a/b", "a b", "+", "#", "x" * 200):
        with pytest.raises(ContractError):
            check_id(bad, "gateway")
    with pytest.raises(ContractError):
        gateway_from_topic("other/v1/gateways/gw-7/observations")


def test_unit_conversion_keeps_the_original() -> None:
    assert to_canonical(Kind.GLUCOSE, 5.5, "mmol/L") == pytest.approx((99.088, "mg/dL", 5.5,
                                                                       "mmol/L"))
    v, u, ov, ou = to_canonical(Kind.WEIGHT, 180.0, "[lb_av]")
    assert (round(v or 0, 4), u, ov, ou) == (81.6466, "kg", 180.0, "[lb_av]")
    assert to_canonical(Kind.BP_SYSTOLIC, 16.0, "kPa")[0] == pytest.approx(120.00992)
    assert to_canonical(Kind.BP_SYSTOLIC, 120.0, "mmHg") == (120.0, "mm[Hg]", None, None)
    assert to_canonical(Kind.BODY_TEMPERATURE, 98.6, "[degF]")[0] == pytest.approx(37.0)
    with pytest.raises(ContractError):
        to_canonical(Kind.GLUCOSE, 1.0, "g/L/s")


def test_plausibility() -> None:
    assert plausibility_problem(Kind.GLUCOSE, 100.0, "mg/dL") is None
    assert plausibility_problem(Kind.GLUCOSE, None, "mg/dL") is None
    assert "outside" in (plausibility_problem(Kind.WEIGHT, 1000.0, "kg") or "")
    assert "must be in" in (plausibility_problem(Kind.WEIGHT, 80.0, "lb") or "")
