"""``vigie demo --headless``: the whole chain, simulated cohort, summary on the last line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_headless_demo_reports_nothing_lost() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vigie", "demo", "--headless", "--duration", "10", "--speed",
         "60000", "--gateways", "2", "--patients", "4", "--live-interval", "0.5"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["observations_sent"] > 50
    assert summary["observations_stored"] == summary["observations_sent"]
    assert summary["lost"] == 0 and summary["duplicates"] == 0
    assert sum(summary["alerts"].values()) > 0, "live readings of the cohort raise alerts"
    kinds = summary["stored_by_kind"]
    assert kinds.get("weight", 0) > 0 and kinds.get("glucose", 0) > 0, kinds  # simulator
    assert kinds.get("bp_systolic", 0) > 0, kinds  # BLE blood-pressure monitor via bleak
    assert {"inr", "hba1c", "nt_probnp", "crp", "creatinine"} & set(kinds), kinds  # serial POC
    assert "gw-ehpad-1" in out.stderr and "/docs" in out.stderr
