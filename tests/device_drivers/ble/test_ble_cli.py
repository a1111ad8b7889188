"""``vigie decode ble``: JSON on stdout, one ``error:`` line and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device_drivers.ble.cli import decode_ble_command

# Nordic GlucoseMeasurementDataCallbackTest vector.
GLUCOSE_HEX = "1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01"


@pytest.mark.parametrize("hex_value", [GLUCOSE_HEX, GLUCOSE_HEX.replace(" ", ":"),
                                       GLUCOSE_HEX.replace(" ", ""), GLUCOSE_HEX.lower()])
def test_glucose_json(hex_value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_ble_command("2a18", hex_value) == 0
    out, err = capsys.readouterr()
    assert err == ""
    (obs,) = json.loads(out)
    assert obs["kind"] == "glucose"
    assert (obs["value"], obs["unit"]) == (3000000.0, "mg/dL")
    assert obs["time"] == "2019-02-27T11:05:30"
    assert obs["sequence"] == 1
    assert (obs["original_value"], obs["original_unit"]) == (30.0, "kg/L")
    assert obs["user_index"] is None
    assert "battery_low" in obs["flags"]


def test_blood_pressure_json(capsys: pytest.CaptureFixture[str]) -> None:
    full_uuid = "00002a35-0000-1000-8000-00805f9b34fb"
    assert decode_ble_command(full_uuid, "00BDF00B009FF0") == 0
    kinds = [o["kind"] for o in json.loads(capsys.readouterr().out)]
    assert kinds == ["bp_systolic", "bp_diastolic", "bp_mean"]


def test_described_characteristic(capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_ble_command("0x2A29", "56 69 67 69 65") == 0
    assert json.loads(capsys.readouterr().out) == {"name": "Manufacturer Name String",
                                                   "manufacturer_name": "Vigie"}


@pytest.mark.parametrize(("uuid", "hex_value", "message"), [
    ("2a18", "1B 01 00", "truncated"),
    ("2a18", "zz", "bad hex"),
    ("2a18", "1B0", "bad hex"),
    ("2a19", "65", "reserved"),
    ("2a37", "0048", "no decoder"),
    ("not-a-uuid", "00", "not a Bluetooth SIG UUID"),
])
def test_errors(uuid: str, hex_value: str, message: str,
                capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_ble_command(uuid, hex_value) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_vigie_command_truncated_payload() -> None:
    vigie = Path(sys.executable).with_name("vigie")
    proc = subprocess.run([str(vigie), "decode", "ble", "2a18", "1b 01 00 e3 07"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Glucose Measurement: truncated")
    assert "Traceback" not in proc.stderr
