"""``vigie decode astm FILE``: print the observations of an ASTM capture as JSON.

Exit status: 0 when everything decoded; 2 when a frame was bad (checksum, frame
number, structure), a record could not be parsed, a message was incomplete, or the
file could not be read. What decoded correctly is printed in every case.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from device_drivers.astm.capture import CaptureResult, decode_capture
from device_drivers.astm.errors import FrameError
from device_drivers.astm.link import MessageDiscarded
from vigie.contract import Observation

__all__ = ["decode_astm_command", "observation_json"]


def observation_json(obs: Observation) -> dict[str, Any]:
    """The JSON form printed by the command (one object per observation)."""
    return {
        "kind": str(obs.kind),
        "value": obs.value,
        "unit": obs.unit,
        "time": obs.device_time.isoformat() if obs.device_time else None,
        "sequence": obs.sequence,
        "patient_ref": obs.patient_ref,
        "original_value": obs.original_value,
        "original_unit": obs.original_unit,
        "flags": list(obs.flags),
        "test_code": obs.extra.get("test_code"),
        "extra": dict(obs.extra),
    }


def _read(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    with open(file, "rb") as handle:
        return handle.read()


def _describe(problem: object) -> str:
    if isinstance(problem, FrameError):
        number = chr(problem.frame[1]) if len(problem.frame) > 1 else "?"
        return f"frame error (FN {number}): {problem}"
    if isinstance(problem, MessageDiscarded):
        return f"incomplete message discarded ({problem.reason}, {problem.records} records)"
    return f"record error: {problem}"


def _report(result: CaptureResult) -> int:
    json.dump([observation_json(o) for o in result.observations], sys.stdout, indent=2)
    sys.stdout.write("\n")
    for problem in result.problems:
        print(_describe(problem), file=sys.stderr)
    return 2 if result.problems else 0


def decode_astm_command(file: str) -> int:
    """Decode ``file`` (``-`` for stdin); return the exit status."""
    try:
        data = _read(file)
    except OSError as exc:
        print(f"error: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return _report(decode_capture(data))
