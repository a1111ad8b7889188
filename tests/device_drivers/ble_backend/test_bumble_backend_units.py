"""Seam and pure tests for the bumble backend and the simulator's byte layouts.

Expected bytes are written out by hand from the GATT specifications.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci

from device_drivers.ble.bumble_backend import (
    BumbleBleakClient,
    BumbleHost,
    BumbleHostConfig,
    BumbleLinkLostError,
    BumbleTimeoutError,
)
from device_drivers.ble.bumble_backend._advertising import merge_advertisement
from device_drivers.ble.bumble_backend._config import resolve_address
from device_drivers.ble.bumble_backend._errors import translate
from device_drivers.ble.bumble_backend._gatt import to_bumble_uuid, uuid_str
from firmware_sim.ble.peripherals import (
    BloodPressureMonitor,
    Glucometer,
    PulseOximeter,
    Quirks,
    Thermometer,
    WeightScale,
)

pytestmark = pytest.mark.timeout(10)

NOW = datetime(2026, 3, 14, 9, 26, 53)
NOW_BYTES = bytes.fromhex("ea07030e091a35")


def clock() -> datetime:
    return NOW


# -- error translation --------------------------------------------------------------


def test_att_error_becomes_gatt_protocol_error_with_its_code() -> None:
    with pytest.raises(BleakGATTProtocolError) as caught, translate("write"):
        raise att.ATT_Error(0x0F)
    assert caught.value.code == 0x0F
    assert isinstance(caught.value.__cause__, att.ATT_Error)


@pytest.mark.parametrize("timeout", [core.TimeoutError(), TimeoutError()])
def test_timeouts_become_bleak_errors_that_are_also_timeout_errors(
    timeout: BaseException,
) -> None:
    with pytest.raises(BumbleTimeoutError) as caught, translate("read"):
        raise timeout
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, BleakError)


def test_hci_error_becomes_bleak_error_naming_the_code() -> None:
    with pytest.raises(BleakError, match="PIN_OR_KEY_MISSING"), translate("encrypt"):
        code = hci.HCI_ErrorCode.PIN_OR_KEY_MISSING_ERROR
        raise hci.HCI_Error(code)  # type: ignore[no-untyped-call]  # untyped in bumble


def test_stray_cancellation_is_a_lost_link_but_real_cancellation_passes() -> None:
    async def stray() -> None:
        with translate("read"):
            raise asyncio.CancelledError  # what bumble does when the link drops

    async def cancelled() -> None:
        with translate("read"):
            await asyncio.sleep(10)

    async def scenario() -> None:
        with pytest.raises(BumbleLinkLostError):
            await stray()
        task = asyncio.create_task(cancelled())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_unreachable_transport_is_bluetooth_not_available() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the host tries it

    async def scenario() -> None:
        config = BumbleHostConfig(f"tcp-client:127.0.0.1:{port}", open_timeout=2.0)
        async with BumbleHost(config) as host:
            scanner_cls, _ = host.backends()
            with pytest.raises(BleakBluetoothNotAvailableError):
                await BleakScanner(backend=scanner_cls).start()

    asyncio.run(scenario())


def test_client_without_a_host_is_a_usage_error() -> None:
    with pytest.raises(BleakError, match="BumbleHost"):
        BleakClient("C0:00:00:00:00:01", backend=BumbleBleakClient)


# -- configuration, UUIDs, advertisements -------------------------------------------


def test_host_address_is_reused_from_the_keystore_namespace(tmp_path: Path) -> None:
    keystore = tmp_path / "bonds.json"
    keystore.write_text(json.dumps({"D1:22:33:44:55:66": {}}))
    config = BumbleHostConfig("tcp-client:127.0.0.1:1", keystore_path=keystore)
    assert resolve_address(config).to_string(False) == "D1:22:33:44:55:66"
    explicit = BumbleHostConfig("usb:0", address="C1:00:00:00:00:02", keystore_path=keystore)
    assert resolve_address(explicit).to_string(False) == "C1:00:00:00:00:02"
    assert resolve_address(BumbleHostConfig("usb:0")).is_static


def test_sig_uuids_go_to_bumble_in_short_form_and_come_back_normalized() -> None:
    glucose = "00001808-0000-1000-8000-00805f9b34fb"
    assert bytes(to_bumble_uuid(glucose).to_bytes()) == b"\x08\x18"
    custom = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
    assert len(to_bumble_uuid(custom).to_bytes()) == 16
    assert uuid_str(to_bumble_uuid(custom)) == custom
    assert uuid_str(to_bumble_uuid(glucose)) == glucose


def _advertisement(raw: bytes, rssi: int = -60) -> SimpleNamespace:
    return SimpleNamespace(data=core.AdvertisingData.from_bytes(raw), rssi=rssi)


def test_advertisement_fields_decode_and_accumulate_like_bluez() -> None:
    first = _advertisement(
        bytes.fromhex("020106")  # flags
        + bytes.fromhex("0303" + "0818")  # complete 16-bit UUIDs: 0x1808
        + bytes.fromhex("0416" + "0f18" + "57")  # service data 0x180F: 87
        + bytes.fromhex("05ff" + "ffff" + "5647")  # manufacturer 0xFFFF: b"VG"
        + bytes.fromhex("020af6")  # TX power -10 dBm
    )
    adv = merge_advertisement(first, None)
    assert adv.service_uuids == ["00001808-0000-1000-8000-00805f9b34fb"]
    assert adv.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x57"}
    assert adv.manufacturer_data == {0xFFFF: b"VG"}
    assert (adv.tx_power, adv.rssi, adv.local_name) == (-10, -60, None)

    scan_response = _advertisement(bytes.fromhex("0409") + b"Glu", rssi=-55)
    merged = merge_advertisement(scan_response, adv)
    assert merged.local_name == "Glu" and merged.rssi == -55
    assert merged.service_uuids == adv.service_uuids and merged.tx_power == -10


# -- simulator byte layouts and quirks ------------------------------------------------


def test_blood_pressure_nan_mean_arterial_pressure() -> None:
    bp = BloodPressureMonitor(
        "BP", "C0:00:00:00:00:10", clock=clock, quirks=Quirks(nan_mean_arterial_pressure=True)
    )
    # flags: time stamp + pulse; 120, 80, NaN (0x07FF) mmHg; time; pulse 72
    expected = b"\x06" + b"\x78\x00\x50\x00\xff\x07" + NOW_BYTES + b"\x48\x00"
    assert bp.measure(120, 80, pulse=72) == expected


def test_blood_pressure_in_kpa() -> None:
    bp = BloodPressureMonitor("BP", "C0:00:00:00:00:10", clock=clock, quirks=Quirks(True))
    # 120/80 mmHg, MAP 93.3 -> 16.0, 10.7, 12.4 kPa: exponent -1 (0xF), mantissas 160, 107, 124
    assert bp.measure(120, 80) == b"\x03" + b"\xa0\xf0\x6b\xf0\x7c\xf0" + NOW_BYTES


def test_weight_in_pounds_and_clock_offset() -> None:
    scale = WeightScale(
        "Scale",
        "C0:00:00:00:00:1D",
        clock=clock,
        quirks=Quirks(imperial_units=True, clock_offset=timedelta(minutes=-7)),
    )
    # 72.4 kg = 159.61 lb -> 15961 x 0.01 lb = 0x3E59; clock 7 min late: 09:19:53
    expected = b"\x07" + b"\x59\x3e" + bytes.fromhex("ea07030e091335") + b"\x03"
    assert scale.measure(72.4, user_id=3) == expected


def test_temperature_in_celsius_and_fahrenheit() -> None:
    celsius = Thermometer("T", "C0:00:00:00:00:09", clock=clock)
    fahrenheit = Thermometer("T", "C0:00:00:00:00:09", clock=clock, quirks=Quirks(True))
    # FLOAT exponent -2 (0xFE): 3720 = 0x000E88; 98.96 degF -> 9896 = 0x0026A8; site 2 (body)
    assert celsius.measure(37.2, site=2) == b"\x06" + b"\x88\x0e\x00\xfe" + NOW_BYTES + b"\x02"
    assert fahrenheit.measure(37.2) == b"\x03" + b"\xa8\x26\x00\xfe" + NOW_BYTES


def test_oximeter_with_clock_never_set_flags_it_and_omits_the_time() -> None:
    normal = PulseOximeter("PO", "C0:00:00:00:00:22", clock=clock)
    unset = PulseOximeter(
        "PO", "C0:00:00:00:00:22", clock=clock, quirks=Quirks(clock_never_set=True)
    )
    assert normal.measure(97, 64) == b"\x01" + b"\x61\x00\x40\x00" + NOW_BYTES
    assert unset.measure(97, 64) == b"\x10" + b"\x61\x00\x40\x00"


def test_glucometer_quirks_change_the_record_bytes() -> None:
    def meter(**quirks: object) -> Glucometer:
        return Glucometer("G", "C0:00:00:00:00:08", clock=clock, quirks=Quirks(**quirks))  # type: ignore[arg-type]

    def first(glucometer: Glucometer) -> bytes:
        return glucometer.measurement_bytes(glucometer.measure(105))

    # 105 mg/dL = 105e-5 kg/L: SFLOAT 0xB069; capillary whole blood at the finger (0x11)
    assert first(meter()) == b"\x02\x01\x00" + NOW_BYTES + b"\x69\xb0\x11"
    # mol/L: 105 / 18.016 = 5.83 mmol/L = 58e-4 mol/L -> 0xC03A, unit flag b2
    assert first(meter(imperial_units=True)) == b"\x06\x01\x00" + NOW_BYTES + b"\x3a\xc0\x11"
    # never set: clock counts from 2000-01-01 00:00:00; sensor status b11 "time fault"
    assert (
        first(meter(clock_never_set=True))
        == b"\x0a\x01\x00" + bytes.fromhex("d00701010000" + "00") + b"\x69\xb0\x11\x00\x08"
    )
    # base time left an hour behind, Time Offset +60 min fixes the user-facing time
    assert (
        first(meter(glucose_time_offset=timedelta(hours=1)))
        == b"\x03\x01\x00" + bytes.fromhex("ea07030e081a35") + b"\x3c\x00\x69\xb0\x11"
    )
