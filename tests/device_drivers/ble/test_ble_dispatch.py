"""UUID dispatch, Device Information, Battery Level, errors, truncation, public surface."""

from __future__ import annotations

import pytest

import device_drivers.ble as ble
from device_drivers.ble import (
    BleDecodeError,
    MalformedPayload,
    TruncatedPayload,
    UnknownCharacteristic,
    decode_characteristic,
    describe_characteristic,
    normalize_uuid,
)
from device_drivers.ble.errors import InvalidRequest
from vigie.contract import Kind


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize("uuid", [0x2A18, "2a18", "2A18", "0x2A18", "0x2a18", " 2a18 ",
                                  "00002a18-0000-1000-8000-00805f9b34fb",
                                  "00002A18-0000-1000-8000-00805F9B34FB"])
def test_uuid_forms(uuid: str | int) -> None:
    assert normalize_uuid(uuid) == 0x2A18


@pytest.mark.parametrize("uuid", ["", "2a1", "zz18", "12345678-0000-1000-8000-00805f9b34fb",
                                  "00002a18-0000-1000-8000-00805f9b34fc", 0x12345, -1])
def test_bad_uuids(uuid: str | int) -> None:
    with pytest.raises(UnknownCharacteristic):
        normalize_uuid(uuid)


def test_unknown_characteristic() -> None:
    with pytest.raises(UnknownCharacteristic, match="0x2A37"):
        decode_characteristic(0x2A37, b"\x00\x48")
    with pytest.raises(UnknownCharacteristic, match="Glucose Feature"):
        decode_characteristic(0x2A51, b"\x00\x00")


def test_error_tree() -> None:
    assert issubclass(BleDecodeError, ValueError)
    assert issubclass(TruncatedPayload, MalformedPayload)
    for cls in (MalformedPayload, UnknownCharacteristic, InvalidRequest):
        assert issubclass(cls, BleDecodeError)
    err = TruncatedPayload(characteristic="X", field="f", needed=4, got=2)
    assert (err.needed, err.got, err.field, err.characteristic) == (4, 2, "f", "X")


def test_battery_level() -> None:
    (obs,) = decode_characteristic(0x2A19, b"\x5a")
    assert (obs.kind, obs.value, obs.unit) == (Kind.BATTERY_LEVEL, 90.0, "%")
    with pytest.raises(MalformedPayload):
        decode_characteristic(0x2A19, b"\x65")  # 101: reserved (BAS 3.1)


@pytest.mark.parametrize(("uuid", "key"), [(0x2A29, "manufacturer_name"),
                                           (0x2A24, "model_number"),
                                           (0x2A25, "serial_number"),
                                           (0x2A26, "firmware_revision")])
def test_device_information_strings(uuid: int, key: str) -> None:
    assert describe_characteristic(uuid, "Vigie é\x00".encode())[key] == "Vigie é"
    with pytest.raises(MalformedPayload):
        describe_characteristic(uuid, b"\xff\xfe")


def test_describe_others() -> None:
    assert describe_characteristic(0x2A08, h("E307021B0B0A1E")) == {
        "name": "Date Time", "time": "2019-02-27T11:10:30", "flags": []}
    assert describe_characteristic(0x2A52, h("05000A00")) == {
        "name": "Record Access Control Point", "count": 10}
    context = describe_characteristic(0x2A34, h("42 0100 01 32F0"))
    assert (context["meal"], context["hba1c_pct"]) == (1, 5.0)
    assert describe_characteristic(0x2A51, h("0100"))["features"] == ["low_battery_detection"]


# Every optional field present, so every proper prefix is a truncated payload.
FULL_PAYLOADS = {
    0x2A18: "1B 0100 E307021B0B0A1E FBFF 1E00 12 0501",
    0x2A34: "FF 0000 B3 03 6400 04 12 3C00 32 04 7BE0 59F1",
    0x2A9D: "0E B036 E80703050800 00 01 E500 D606",
    0x2A35: "1E 8A00 5800 7800 0000 04 11 14 29 3B 3C00 01 2700",
    0x2A36: "1E 8A00 FF07 FF07 0000 04 11 14 29 3B 3C00 01 2700",
    0x2A5E: "0F 6100 4800 E80703050800 00 8000 200000 34F0",
    0x2A5F: "1F 6100 4800 6000 4B00 6200 4600 0080 008000 0AF0",
    0x2A1C: "07 DA0300FF E80703050800 00 06",
    0x2A19: "5A",
}
DESCRIBED_PAYLOADS = {0x2A08: "E307021B0B0A1E", 0x2A51: "0304", 0x2A52: "06000101",
                      0x2A9E: "BF010000"}


@pytest.mark.parametrize("uuid", sorted(FULL_PAYLOADS))
def test_every_prefix_is_truncated(uuid: int) -> None:
    data = h(FULL_PAYLOADS[uuid])
    assert decode_characteristic(uuid, data)  # the whole payload decodes
    for length in range(len(data)):
        with pytest.raises(TruncatedPayload):
            decode_characteristic(uuid, data[:length])


@pytest.mark.parametrize("uuid", sorted(DESCRIBED_PAYLOADS))
def test_every_prefix_is_truncated_described(uuid: int) -> None:
    data = h(DESCRIBED_PAYLOADS[uuid])
    assert describe_characteristic(uuid, data)
    for length in range(len(data)):
        with pytest.raises(TruncatedPayload):
            describe_characteristic(uuid, data[:length])


def test_trailing_bytes_are_ignored() -> None:
    # Later revisions append fields; a client ignores what it does not know (GSS 2.3).
    assert decode_characteristic(0x2A1C, h("00 6E0100FF 0000")) == decode_characteristic(
        0x2A1C, h("00 6E0100FF"))


def test_public_surface() -> None:
    assert sorted(ble.__all__) == ble.__all__
    for name in ble.__all__:
        assert hasattr(ble, name), name
    assert "decode_characteristic" in ble.__all__
    assert not [n for n in ble.__all__ if n.startswith("_")]
