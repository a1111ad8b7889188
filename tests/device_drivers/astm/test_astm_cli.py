"""``vigie decode astm``: captures, bare records, errors, exit status."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import device_drivers.astm as astm
from device_drivers.astm import encode_frame, encode_message
from device_drivers.astm.cli import decode_astm_command

RECORDS = ["H|\\^&|||POC^2.1|||||||P|LIS2-A2|20240301101500", "P|1||PAT-0042",
           "O|1|S1||^^^INR", "R|1|^^^INR|2.4|INR|2.0-3.0|H||F||||20240301101200",
           "R|2|^^^HBA1C|53|mmol/mol|||F||||20240301101300", "L|1|N"]


def _capture(*, corrupt: int | None = None, bad_number: bool = False) -> bytes:
    """Both directions interleaved, as a line tap records them."""
    out = b"\x05\x06"
    for i, frame in enumerate(encode_message(RECORDS)):
        if i == corrupt:
            out += frame[:-4] + b"00\r\n" + b"\x15"  # §6.5.1: NAKed, then resent
        out += frame + b"\x06"
    if bad_number:
        out += encode_frame(5, b"C|1||x\r", final=True) + b"\x15"
    return out + b"\x04"


def _run(tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str],
         ) -> tuple[int, list[dict[str, object]], str]:
    path = tmp_path / "capture.bin"
    path.write_bytes(data)
    status = decode_astm_command(str(path))
    out, err = capsys.readouterr()
    return status, json.loads(out), err


def test_clean_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, observations, err = _run(tmp_path, _capture(), capsys)
    assert status == 0 and err == ""
    assert observations[0] == {
        "kind": "inr", "value": 2.4, "unit": "{INR}", "time": "2024-03-01T10:12:00",
        "sequence": 1, "patient_ref": "PAT-0042", "original_value": 2.4,
        "original_unit": "INR", "flags": ["abnormal:H"], "test_code": "INR",
        "extra": observations[0]["extra"]}
    assert observations[1]["kind"] == "hba1c"
    assert observations[1]["original_unit"] == "mmol/mol"


def test_bad_frames_are_reported_and_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    status, observations, err = _run(tmp_path, _capture(corrupt=3, bad_number=True), capsys)
    assert status == 2
    assert len(observations) == 2  # the resent frame completed the message
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "bad checksum" in lines[0] and "bad frame number" in lines[1]


def test_truncated_capture_discards_the_incomplete_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _capture()
    status, observations, err = _run(tmp_path, data[: data.index(b"\x02" + b"5")], capsys)
    assert status == 2 and observations == []
    assert "incomplete message" in err


def test_capture_without_enq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, observations, _ = _run(tmp_path, b"".join(encode_message(RECORDS)) + b"\x04",
                                   capsys)
    assert status == 0 and len(observations) == 2


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_bare_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], sep: bytes) -> None:
    status, observations, _ = _run(tmp_path, sep.join(r.encode() for r in RECORDS) + sep,
                                   capsys)
    assert status == 0 and [o["kind"] for o in observations] == ["inr", "hba1c"]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_capture())))
    assert decode_astm_command("-") == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_astm_command(str(tmp_path / "missing.bin")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: cannot read") and len(err.strip().splitlines()) == 1


def test_vigie_cli_wiring(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vigie.cli import app

    path = tmp_path / "c.bin"
    path.write_bytes(_capture())
    result = CliRunner().invoke(app, ["decode", "astm", str(path)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["kind"] == "inr"


def test_public_surface() -> None:
    assert sorted(astm.__all__) == sorted(set(astm.__all__))
    for name in astm.__all__:
        assert hasattr(astm, name), name
    assert "Receiver" in astm.__all__ and "decode_capture" in astm.__all__
