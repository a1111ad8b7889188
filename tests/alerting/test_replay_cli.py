"""`vigie replay`: good file, bad lines with numbers and exit status, rules file."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from alerting.cli import replay_command
from vigie.cli import app

LINES = [
    {"patient": "p1", "kind": "weight", "value": 80.0, "unit": "kg",
     "time": "2025-01-01T07:00:00Z"},
    {"patient": "p1", "kind": "weight", "value": 176.4, "unit": "lb",
     "time": "2025-01-02T07:00:00Z"},
    {"patient": "p1", "kind": "weight", "value": 80.1, "unit": "kg",
     "time": "2025-01-03T07:00:00Z"},
    {"patient": "p1", "kind": "weight", "value": 82.6, "unit": "kg",
     "time": "2025-01-04T07:00:00Z"},
    {"patient": "p2", "kind": "glucose", "value": 3.5, "unit": "mmol/L",
     "time": "2025-01-04T08:00:00Z"},
]


def _write(tmp_path: Path, lines: Sequence[object], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def _run(file: Path, rules: Path | None = None) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = replay_command(file, rules, out=out, err=err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_good_file(tmp_path: Path) -> None:
    code, alerts, err = _run(_write(tmp_path, LINES))
    assert code == 0 and err == ""
    rules = {(a["patient"], a["rule"]) for a in alerts}
    assert ("p1", "hf.weight_gain_3d") in rules
    hypo = next(a for a in alerts if a["rule"] == "dm.hypoglycaemia")
    assert hypo["severity"] == "warning" and hypo["category"] == "clinical"
    assert hypo["time"] == "2025-01-04T08:00:00.000000Z"
    assert abs(float(hypo["value"]) - 3.5 * 18.016) < 1e-6  # type: ignore[arg-type]
    assert {"patient", "rule", "severity", "category", "time", "message", "value"} <= set(
        alerts[0])


def test_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path, LINES)
    assert _run(path) == _run(path)


def test_silence_on_replay_clock(tmp_path: Path) -> None:
    later = {"patient": "p1", "kind": "weight", "value": 80.0, "unit": "kg",
             "time": "2025-01-10T07:00:00Z"}
    code, alerts, _ = _run(_write(tmp_path, [*LINES[:4], later]))
    silence = next(a for a in alerts if a["rule"] == "silence.weight")
    assert code == 0
    assert silence["category"] == "adherence" and silence["time"] == "2025-01-07T07:00:00.000000Z"


def test_bad_lines_reported_with_numbers(tmp_path: Path) -> None:
    lines: list[object] = [LINES[0], "not json", {"patient": "p1", "kind": "weight"},
                           {**LINES[1], "unit": "stone"}, {**LINES[1], "time": "2025-01-02"},
                           {**LINES[1], "kind": "mood"}, {**LINES[1], "value": 9000},
                           "", LINES[2]]
    code, _, err = _run(_write(tmp_path, lines))
    assert code == 1
    reported = [line.split(":")[0] for line in err.splitlines()]
    assert reported == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "missing field 'value'" in err and "stone" in err


def test_unusable_input(tmp_path: Path) -> None:
    assert _run(tmp_path / "missing.jsonl")[0] == 2
    bad_rules = tmp_path / "rules.toml"
    bad_rules.write_text('[thresholds."dm.hypoglycaemia"]\nl1 = 5\n')
    assert _run(_write(tmp_path, LINES), bad_rules)[0] == 2
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    assert _run(tmp_path / "bin.jsonl")[0] == 2


def test_rules_file_changes_thresholds_and_settings(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[thresholds."hf.weight_gain_3d"]\nkg = 3.0\n'
                     '[patients.p2]\nprofile = "heart_failure"\n')
    code, alerts, _ = _run(_write(tmp_path, LINES), rules)
    assert code == 0
    assert not [a for a in alerts if a["rule"] in ("hf.weight_gain_3d", "dm.hypoglycaemia")]


def test_wired_in_vigie_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(_write(tmp_path, LINES))])
    assert result.exit_code == 0
    assert "hf.weight_gain_3d" in result.output
