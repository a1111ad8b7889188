"""The cloud process's collector settings (cloud_api.runtime), checked in a fresh
interpreter: freezing is process-wide and the test process must keep its own."""

from __future__ import annotations

import json
import subprocess
import sys

from cloud_api.runtime import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD

PROBE = """
import gc, json
from cloud_api.runtime import tune_gc
import cloud_api.app  # what run_cloud has imported when it tunes
before = gc.get_freeze_count()
tune_gc()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                  "threshold": gc.get_threshold()}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["before"] == 0
    assert got["frozen"] > 50_000, "the imported modules' objects are out of every pass"
    assert got["threshold"] == [GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD]
    assert GEN0_THRESHOLD > 700
