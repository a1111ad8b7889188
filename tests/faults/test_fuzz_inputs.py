"""Bad input never crashes a parser: random bytes and mutated valid inputs give a value or
the parser's own error, nothing else (no IndexError, no UnicodeDecodeError, no garbage)."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.onetouch.ultraeasy import OneTouchError, decode_packet, encode_packet
from gateway.sources.replay import parse_line
from vigie.contract import ContractError, reading_from_json

FUZZ = settings(max_examples=300, deadline=None, derandomize=True)


@FUZZ
@given(st.binary(max_size=80))
def test_onetouch_packets_from_random_bytes(raw: bytes) -> None:
    with contextlib.suppress(OneTouchError):
        decode_packet(raw)


@FUZZ
@given(st.binary(min_size=1, max_size=40), st.integers(0, 255), st.data())
def test_onetouch_packet_with_one_flipped_byte_is_refused(message: bytes, link: int,
                                                           data: st.DataObject) -> None:
    raw = bytearray(encode_packet(link & 0x0F, message))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        packet = decode_packet(bytes(raw))
    except OneTouchError:
        return
    # CRC-16 catches every single-byte error: a packet that still decodes must be intact
    assert packet.message == message, "a corrupted packet was accepted with other content"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=6),
    max_leaves=20)


@FUZZ
@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_replay_lines(text: str) -> None:
    with contextlib.suppress(ContractError):
        parse_line(text)


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    k: json_values for k in ("id", "device", "patient", "seq", "kind", "value", "unit",
                             "measured_at", "received_at", "time_trusted", "flags",
                             "device_seq", "clock_offset_s", "tz")}))
def test_ingest_reading_validator(obj: dict[str, object]) -> None:
    with contextlib.suppress(ContractError):
        reading_from_json(obj, "gw-1")
