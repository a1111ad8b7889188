"""Property tests: the simulator's independent encoders -> the gateway's codecs."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.ble import (
    BleDecodeError,
    RacpNumberOfRecords,
    RacpResult,
    decode_blood_pressure_measurement,
    decode_characteristic,
    decode_float,
    decode_glucose_context,
    decode_glucose_measurement,
    decode_plx_continuous,
    decode_plx_spot_check,
    decode_racp_response,
    decode_sfloat,
    decode_temperature_measurement,
    decode_weight_measurement,
    describe_characteristic,
)
from device_drivers.ble.mder import MderNumber
from firmware_sim.ble import encoders as enc
from vigie.contract import Kind

SPECIALS = ("nan", "nres", "+inf", "-inf", "reserved")
sfloat_values = st.builds(lambda m, e: Decimal(m).scaleb(e),
                          st.integers(-2045, 2045), st.integers(-8, 7))
float_values = st.builds(lambda m, e: Decimal(m).scaleb(e),
                         st.integers(-(2**23 - 3), 2**23 - 3), st.integers(-128, 127))
sfloat_or_special = st.one_of(sfloat_values, st.sampled_from(SPECIALS))
times = st.datetimes(min_value=datetime(1600, 1, 1), max_value=datetime(9000, 12, 31)).map(
    lambda t: t.replace(microsecond=0))
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)


def same(number: MderNumber | None, sent: Decimal | str | None) -> bool:
    """A decoded number equals what the encoder was given (value or special name)."""
    if number is None or sent is None:
        return number is None and sent is None
    if isinstance(sent, str):
        return number.special == sent
    return number.decimal == sent


@settings(max_examples=200, deadline=None)
@given(sfloat_or_special)
def test_sfloat(value: Decimal | str) -> None:
    assert same(decode_sfloat(enc.encode_sfloat(value)), value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(float_values, st.sampled_from(SPECIALS)))
def test_float(value: Decimal | str) -> None:
    assert same(decode_float(enc.encode_float(value)), value)


@settings(max_examples=200, deadline=None)
@given(seq=u16, base=times, offset=st.none() | st.integers(-32768, 32767),
       conc=st.none() | sfloat_values, mol=st.booleans(), stype=st.integers(1, 15),
       loc=st.integers(1, 15), status=st.none() | u16, ctx=st.booleans())
def test_glucose_measurement(seq: int, base: datetime, offset: int | None,
                             conc: Decimal | None, mol: bool, stype: int, loc: int,
                             status: int | None, ctx: bool) -> None:
    data = enc.encode_glucose_measurement(
        sequence=seq, base_time=base, time_offset_min=offset, concentration=conc,
        unit="mol/L" if mol else "kg/L", sample_type=stype, sample_location=loc,
        sensor_status=status, context_follows=ctx)
    m = decode_glucose_measurement(data)
    assert (m.sequence, m.time_offset_min, m.sensor_status, m.context_follows) == (
        seq, offset, status, ctx)
    assert same(m.concentration, conc)
    assert m.unit == ("mol/L" if mol else "kg/L")
    assert m.user_facing_time == base + timedelta(minutes=offset or 0)
    if conc is not None:
        assert (m.sample_type, m.sample_location) == (stype, loc)
        factor = Decimal("18016") if mol else Decimal("100000")
        (obs,) = decode_characteristic(0x2A18, data)
        assert obs.value == float(conc * factor)


@settings(max_examples=200, deadline=None)
@given(seq=u16, ext=st.none() | u8, carb=st.none() | st.tuples(u8, sfloat_values),
       meal=st.none() | st.integers(0, 15), tester=st.none() | st.tuples(
           st.integers(0, 15), st.integers(0, 15)),
       exercise=st.none() | st.tuples(u16, u8), med=st.none() | st.tuples(u8, sfloat_values),
       litres=st.booleans(), hba1c=st.none() | sfloat_values)
def test_glucose_context(seq: int, ext: int | None, carb: tuple[int, Decimal] | None,
                         meal: int | None, tester: tuple[int, int] | None,
                         exercise: tuple[int, int] | None, med: tuple[int, Decimal] | None,
                         litres: bool, hba1c: Decimal | None) -> None:
    data = enc.encode_glucose_context(
        sequence=seq, extended_flags=ext,
        carbohydrate_id=carb and carb[0], carbohydrate_kg=carb[1] if carb else 0, meal=meal,
        tester=tester and tester[0], health=tester[1] if tester else 15,
        exercise_duration_s=exercise and exercise[0],
        exercise_intensity_pct=exercise[1] if exercise else 0,
        medication_id=med and med[0], medication=med[1] if med else 0,
        medication_unit="L" if litres else "kg", hba1c_pct=hba1c)
    c = decode_glucose_context(data)
    assert (c.sequence, c.extended_flags, c.meal) == (seq, ext, meal)
    assert (c.carbohydrate_id, c.medication_id) == (carb and carb[0], med and med[0])
    assert same(c.carbohydrate_kg, carb and carb[1])
    assert same(c.medication, med and med[1])
    assert same(c.hba1c_pct, hba1c)
    assert (c.tester, c.health) == (tester or (None, None))
    assert (c.exercise_duration_s, c.exercise_intensity_pct) == (exercise or (None, None))
    assert c.medication_unit == (None if med is None else ("L" if litres else "kg"))


@settings(max_examples=200, deadline=None)
@given(raw=st.integers(0, 0xFFFE) | st.none(), imperial=st.booleans(),
       when=st.none() | times, user=st.none() | u8,
       bmi_height=st.none() | st.tuples(u16, u16))
def test_weight(raw: int | None, imperial: bool, when: datetime | None, user: int | None,
                bmi_height: tuple[int, int] | None) -> None:
    step = Decimal("0.01") if imperial else Decimal("0.005")
    data = enc.encode_weight_measurement(
        weight=None if raw is None else raw * step, imperial=imperial, time_stamp=when,
        user_id=user, bmi=bmi_height and bmi_height[0] * Decimal("0.1"),
        height=bmi_height and bmi_height[1] * (Decimal("0.1") if imperial else Decimal("0.001")))
    m = decode_weight_measurement(data)
    assert m.weight_raw == (0xFFFF if raw is None else raw)
    assert m.imperial is imperial
    assert (None if m.time is None else m.time.when) == when
    assert m.user_id == user
    assert (m.bmi_raw, m.height_raw) == (bmi_height or (None, None))
    (obs,) = decode_characteristic(0x2A9D, data)
    assert obs.kind is Kind.WEIGHT
    if raw is not None:
        kg = raw * step * (Decimal("0.45359237") if imperial else 1)
        assert obs.value == float(kg)


@settings(max_examples=200, deadline=None)
@given(values=st.tuples(sfloat_or_special, sfloat_or_special, sfloat_or_special),
       kpa=st.booleans(), when=st.none() | times, pulse=st.none() | sfloat_or_special,
       user=st.none() | u8, status=st.none() | u16)
def test_blood_pressure(values: tuple[Decimal | str, Decimal | str, Decimal | str],
                        kpa: bool, when: datetime | None, pulse: Decimal | str | None,
                        user: int | None, status: int | None) -> None:
    data = enc.encode_blood_pressure_measurement(
        systolic=values[0], diastolic=values[1], mean=values[2], kpa=kpa, time_stamp=when,
        pulse_rate=pulse, user_id=user, status=status)
    m = decode_blood_pressure_measurement(data)
    assert all(same(n, v) for n, v in zip((m.systolic, m.diastolic, m.mean), values,
                                          strict=True))
    assert same(m.pulse_rate, pulse)
    assert (m.kpa, m.user_id, m.status) == (kpa, user, status)
    assert (None if m.time is None else m.time.when) == when
    kinds = [o.kind for o in decode_characteristic(0x2A35, data)]
    assert len(kinds) == (3 if pulse is None else 4)


@settings(max_examples=200, deadline=None)
@given(spo2=sfloat_or_special, pr=sfloat_or_special, when=st.none() | times,
       status=st.none() | u16, device=st.none() | st.integers(0, 0xFFFFFF),
       pai=st.none() | sfloat_or_special, clock_not_set=st.booleans())
def test_plx_spot_check(spo2: Decimal | str, pr: Decimal | str, when: datetime | None,
                        status: int | None, device: int | None, pai: Decimal | str | None,
                        clock_not_set: bool) -> None:
    data = enc.encode_plx_spot_check(
        spo2=spo2, pulse_rate=pr, time_stamp=when, measurement_status=status,
        device_sensor_status=device, pulse_amplitude_index=pai,
        device_clock_not_set=clock_not_set)
    m = decode_plx_spot_check(data)
    assert same(m.spo2, spo2) and same(m.pulse_rate, pr) and same(m.pulse_amplitude_index, pai)
    assert (m.measurement_status, m.device_sensor_status) == (status, device)
    assert m.clock_not_set is clock_not_set
    assert (None if m.time is None else m.time.when) == when


pairs = st.none() | st.tuples(sfloat_or_special, sfloat_or_special)


@settings(max_examples=200, deadline=None)
@given(spo2=sfloat_or_special, pr=sfloat_or_special, fast=pairs, slow=pairs,
       status=st.none() | u16, device=st.none() | st.integers(0, 0xFFFFFF),
       pai=st.none() | sfloat_or_special)
def test_plx_continuous(spo2: Decimal | str, pr: Decimal | str,
                        fast: tuple[Decimal | str, Decimal | str] | None,
                        slow: tuple[Decimal | str, Decimal | str] | None,
                        status: int | None, device: int | None,
                        pai: Decimal | str | None) -> None:
    data = enc.encode_plx_continuous(
        spo2=spo2, pulse_rate=pr, fast=fast, slow=slow, measurement_status=status,
        device_sensor_status=device, pulse_amplitude_index=pai)
    m = decode_plx_continuous(data)
    assert same(m.spo2, spo2) and same(m.pulse_rate, pr) and same(m.pulse_amplitude_index, pai)
    for got, sent in ((m.fast, fast), (m.slow, slow)):
        assert (got is None) == (sent is None)
        if got is not None and sent is not None:
            assert same(got[0], sent[0]) and same(got[1], sent[1])
    assert (m.measurement_status, m.device_sensor_status) == (status, device)


@settings(max_examples=200, deadline=None)
@given(temp=st.one_of(float_values, st.sampled_from(SPECIALS)), fahrenheit=st.booleans(),
       when=st.none() | times, ttype=st.none() | u8)
def test_temperature(temp: Decimal | str, fahrenheit: bool, when: datetime | None,
                     ttype: int | None) -> None:
    data = enc.encode_temperature_measurement(
        temperature=temp, fahrenheit=fahrenheit, time_stamp=when, temperature_type=ttype)
    m = decode_temperature_measurement(data)
    assert same(m.temperature, temp)
    assert (m.fahrenheit, m.temperature_type) == (fahrenheit, ttype)
    assert (None if m.time is None else m.time.when) == when
    (obs,) = decode_characteristic(0x2A1C, data)
    assert (obs.value is None) is isinstance(temp, str)
    if not fahrenheit and not isinstance(temp, str):
        assert obs.value == float(temp)


@settings(max_examples=200, deadline=None)
@given(request=u8, code=u8, count=u16)
def test_racp_responses(request: int, code: int, count: int) -> None:
    result = decode_racp_response(enc.encode_racp_response_code(request_opcode=request,
                                                                response_code=code))
    assert result == RacpResult(request, code)
    assert decode_racp_response(
        enc.encode_racp_number_of_records(count=count)) == RacpNumberOfRecords(count)


OBSERVATION_UUIDS = [0x2A18, 0x2A34, 0x2A9D, 0x2A35, 0x2A36, 0x2A5E, 0x2A5F, 0x2A1C, 0x2A19]
DESCRIBED_UUIDS = [0x2A08, 0x2A29, 0x2A51, 0x2A52, 0x2A9E]


@settings(max_examples=200, deadline=None)
@given(uuid=st.sampled_from(OBSERVATION_UUIDS), data=st.binary(max_size=40))
def test_arbitrary_bytes_decode_or_raise_codec_errors(uuid: int, data: bytes) -> None:
    """Whatever a peer sends, the codec answers observations or a BleDecodeError."""
    try:
        observations = decode_characteristic(uuid, data)
    except BleDecodeError:
        return
    for obs in observations:
        assert obs.value is None or math.isfinite(obs.value)


@settings(max_examples=200, deadline=None)
@given(uuid=st.sampled_from(DESCRIBED_UUIDS), data=st.binary(max_size=20))
def test_arbitrary_bytes_describe_or_raise_codec_errors(uuid: int, data: bytes) -> None:
    with contextlib.suppress(BleDecodeError):
        json.dumps(describe_characteristic(uuid, data))
