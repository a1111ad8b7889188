"""The ``stored`` payload the cloud sends a gateway (end-to-end acknowledgement): round trip,
and nothing a sender can put on the topic makes the decoder do more than refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigie.contract import (
    MAX_STORED_BYTES,
    MAX_STORED_IDS,
    ContractError,
    decode_stored,
    encode_stored,
    is_reading_id,
    stored_topic,
)

reading_ids = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
gateways = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def test_topic() -> None:
    assert stored_topic("gw-1") == "vigie/v1/gateways/gw-1/stored"
    with pytest.raises(ContractError):
        stored_topic("gw/+")


@given(gateways, st.lists(reading_ids, max_size=50))
def test_round_trip(gateway: str, ids: list[str]) -> None:
    assert decode_stored(encode_stored(gateway, ids), gateway) == tuple(ids)


def test_the_largest_message_fits_its_bound() -> None:
    ids = [f"{i:032x}" for i in range(MAX_STORED_IDS)]
    payload = encode_stored("g" * 128, ids)
    assert len(payload) <= MAX_STORED_BYTES
    assert decode_stored(payload, "g" * 128) == tuple(ids)
    with pytest.raises(ContractError):
        encode_stored("gw", [*ids, ids[0]])


def _body(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "gateway": "gw", "ids": [], **fields}).encode()


@pytest.mark.parametrize("payload", [
    _body(v=2), _body(v=True), _body(v="1"), _body(gateway="gw-2"), _body(gateway=None),
    _body(ids=None), _body(ids="0" * 32), _body(ids={"a": 1}), _body(ids=["0" * 31]),
    _body(ids=["0" * 32 + "\n"]), _body(ids=["A" * 32]), _body(ids=[1]), _body(ids=[None]),
    _body(ids=[["0" * 32]]), _body(ids=["0" * 32] * (MAX_STORED_IDS + 1)),
    b"[]", b"null", b"", b"{", b"\xff", b"[" * 100_000, b" " * (MAX_STORED_BYTES + 1),
    b'{"v": 1, "gateway": "gw", "ids": [], "x": ' + b"[" * 50 + b"]" * 50 + b"}",
    b'{"v": 1, "gateway": "gw", "ids": [1' + b"0" * 5000 + b"]}",
])
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(ContractError):
        decode_stored(payload, "gw")


@given(st.binary(max_size=300))
def test_any_bytes_are_refused_or_decoded(payload: bytes) -> None:
    try:
        ids = decode_stored(payload, "gw")
    except ContractError:
        return
    assert all(is_reading_id(i) for i in ids)


@given(json_values, st.lists(reading_ids | json_values, max_size=5))
def test_any_json_is_refused_or_decoded(value: Any, ids: list[Any]) -> None:
    for body in (value, {"v": 1, "gateway": "gw", "ids": ids}, {"v": 1, "gateway": "gw",
                                                                "ids": ids, "extra": value}):
        try:
            got = decode_stored(json.dumps(body).encode(), "gw")
        except ContractError:
            continue
        assert list(got) == ids and all(is_reading_id(i) for i in got)
