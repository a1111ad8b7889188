"""Garbage-collector settings of the cloud process, measured with benchmarks/pipeline.py.

CPython's cyclic collector holds the interpreter while it walks the objects it tracks. With
the default thresholds, a full (generation 2) pass came every few seconds at 5,000
readings/s and walked all that start-up had imported and built (about 170,000 objects) plus
the rule engine's state: 70 to 150 ms each on this 2-core machine, and the readings queued
behind it made the p99 reading-to-alert latency.

- What exists once the process is built lives as long as the process: ``gc.freeze`` moves it
  out of every later pass. Reference counting still frees any of it that is dropped.
- A larger first threshold lets the short-lived objects of a batch (payload dicts, ORM rows)
  die before a collection sees them, so fewer reach the old generation and full passes come
  rarely. Memory is still reclaimed by reference counting as before; only reference cycles
  wait longer, at most 20,000 new objects.
"""

from __future__ import annotations

import gc
from typing import Final

GEN0_THRESHOLD: Final = 20_000  # default 700
GEN1_THRESHOLD: Final = 20  # default 10
GEN2_THRESHOLD: Final = 10  # default 10


def tune_gc() -> None:
    """Call once the process is built (imports, app, engine), before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
