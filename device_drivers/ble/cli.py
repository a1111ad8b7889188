"""``vigie decode ble UUID HEX``: decode one characteristic value, print JSON.

Observation characteristics print a JSON array of observations; the others (features, Date
Time, Device Information strings, RACP responses) print one JSON object. Bad input prints one
``error: ...`` line on stderr and returns 2: no traceback reaches the user.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from device_drivers.ble.characteristics import (
    decode_characteristic,
    describe_characteristic,
    normalize_uuid,
)
from device_drivers.ble.errors import BleDecodeError, UnknownCharacteristic
from vigie.contract import Observation

__all__ = ["decode_ble_command", "observation_to_json", "parse_hex"]

_SEPARATORS = re.compile(r"[\s:]+")
EXIT_OK = 0
EXIT_BAD_INPUT = 2


def parse_hex(text: str) -> bytes:
    """Bytes of a hex string that may contain spaces or colons (``"1b:01 00"``)."""
    cleaned = _SEPARATORS.sub("", text)
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise ValueError(f"bad hex value {text!r}: {exc}") from exc


def observation_to_json(obs: Observation) -> dict[str, Any]:
    """An observation as a JSON object (naive device times stay naive, as sent)."""
    return {
        "kind": str(obs.kind),
        "value": obs.value,
        "unit": obs.unit,
        "time": None if obs.device_time is None else obs.device_time.isoformat(),
        "sequence": obs.sequence,
        "original_value": obs.original_value,
        "original_unit": obs.original_unit,
        "user_index": obs.user_index,
        "flags": list(obs.flags),
        "extra": dict(obs.extra),
    }


def _decode(uuid: str, data: bytes) -> Any:
    try:
        return [observation_to_json(o) for o in decode_characteristic(uuid, data)]
    except UnknownCharacteristic:
        normalize_uuid(uuid)  # re-raises for a UUID that is not one at all
        return describe_characteristic(uuid, data)


def decode_ble_command(uuid: str, hex_value: str) -> int:
    """Print the decoded value as JSON on stdout; return 0, or 2 after one stderr line."""
    try:
        result = _decode(uuid, parse_hex(hex_value))
    except (BleDecodeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result, indent=2))
    return EXIT_OK
