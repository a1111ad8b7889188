"""The device-list payload the cloud publishes to a gateway: round trip, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigie.contract import (
    ContractError,
    DeviceAssignment,
    GatewayDevices,
    decode_gateway_devices,
    devices_config_topic,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
bad_ids = st.one_of(st.just(""), st.just("a/b"), st.just("#"), st.just("a b"),
                    st.text(min_size=129, max_size=140, alphabet="ab"), st.integers(),
                    st.none(), st.lists(st.integers(), max_size=1))


@st.composite
def device_lists(draw: st.DrawFn) -> GatewayDevices:
    device_ids = draw(st.lists(ids, unique=True, max_size=8))
    devices = []
    for device in device_ids:
        shared = draw(st.booleans())
        patient = None if shared else draw(st.none() | ids)
        devices.append(DeviceAssignment(device, patient, shared))
    return GatewayDevices(draw(ids), draw(st.integers(0, 2**53)), tuple(devices))


def test_topic() -> None:
    assert devices_config_topic("gw-1") == "vigie/v1/gateways/gw-1/config/devices"
    with pytest.raises(ContractError):
        devices_config_topic("gw/1")


@given(device_lists())
def test_round_trip(devices: GatewayDevices) -> None:
    assert decode_gateway_devices(devices.encode(), devices.gateway_id) == devices


def _body(devices: GatewayDevices) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(devices.encode())
    return body


@st.composite
def malformed(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid list broken in exactly one way (or bytes that are not a list at all)."""
    devices = draw(device_lists())
    body = _body(devices)
    entry = {"id": "dev-1", "patient": "p-1", "shared": False}
    how = draw(st.sampled_from([
        "not_json", "not_object", "version_v", "no_v", "gateway", "version", "devices",
        "device_not_object", "device_id", "patient", "shared", "both", "twice"]))
    if how == "not_json":
        return draw(st.binary(max_size=20).filter(_not_json)), devices.gateway_id
    if how == "not_object":
        return json.dumps(draw(st.lists(st.integers(), max_size=3))).encode(), devices.gateway_id
    if how == "version_v":
        body["v"] = draw(st.sampled_from([0, 2, "1", True, 1.5, None]))
    elif how == "no_v":
        del body["v"]
    elif how == "gateway":
        body["gateway"] = draw(ids.filter(lambda g: g != devices.gateway_id) | st.none())
    elif how == "version":
        body["version"] = draw(st.sampled_from([-1, "3", None, True, 1.5, [1]]))
    elif how == "devices":
        body["devices"] = draw(st.sampled_from([None, {}, "dev-1", 3]))
    elif how == "device_not_object":
        body["devices"].append(draw(st.sampled_from([None, "dev-1", 3, []])))
    elif how == "device_id":
        body["devices"].append({**entry, "id": draw(bad_ids)})
    elif how == "patient":
        body["devices"].append({**entry, "patient": draw(bad_ids.filter(
            lambda v: v is not None))})
    elif how == "shared":
        body["devices"].append({**entry, "shared": draw(st.sampled_from([1, "true", None]))})
    elif how == "both":
        body["devices"].append({**entry, "shared": True})
    elif how == "twice":
        body["devices"] += [entry, {**entry, "patient": None}]
    return json.dumps(body).encode(), devices.gateway_id


def _not_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


@given(malformed())
def test_malformed_lists_are_refused(case: tuple[bytes, str]) -> None:
    payload, gateway = case
    with pytest.raises(ContractError):
        decode_gateway_devices(payload, gateway)


def test_unknown_fields_are_ignored() -> None:
    """A later cloud may add fields (user maps, say): an older gateway ignores them."""
    body = {"v": 1, "gateway": "gw-1", "version": 3, "extra": 1,
            "devices": [{"id": "dev-1", "patient": "p-1", "shared": False, "users": {}}]}
    got = decode_gateway_devices(json.dumps(body).encode(), "gw-1")
    assert got == GatewayDevices("gw-1", 3, (DeviceAssignment("dev-1", "p-1"),))
