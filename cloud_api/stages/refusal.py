"""A refused input: the quarantine record that keeps it, with a short fixed code.

The code names the class of fault (``too-deep``, ``time``, ``unregistered-gateway``...) so
counts per code stay few, whatever an attacker sends; the reason gives the detail. Nothing
refused is dropped: the record keeps the payload (truncated) for an admin to look at.
"""

from __future__ import annotations

import json
from typing import Any, Final

from cloud_api.db import Quarantine
from vigie.contract import now_utc

PAYLOAD_KEEP: Final = 4000  # characters of an offending payload kept in quarantine
REASON_KEEP: Final = 2000


def payload_text(payload: Any) -> str:
    """The offending payload as text, at most PAYLOAD_KEEP characters. Bytes are decoded
    with replacement; a parsed value (already bounded in depth by the decoder) as JSON."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload[:PAYLOAD_KEEP * 4]).decode("utf-8", "replace")[:PAYLOAD_KEEP]
    if isinstance(payload, str):
        return payload[:PAYLOAD_KEEP]
    try:
        return json.dumps(payload, default=str)[:PAYLOAD_KEEP]
    except (ValueError, RecursionError):  # a circular or too deep value: its repr, cut
        return repr(payload)[:PAYLOAD_KEEP]


def refusal(topic: str, gateway: str | None, code: str, reason: str, payload: Any,
            reading_id: str | None = None) -> Quarantine:
    """The quarantine record of one refused message or reading; ``reason`` is stored as
    ``"<code>: <reason>"``."""
    return Quarantine(received_at=now_utc(), topic=topic[:512], gateway_id=gateway,
                      reading_id=reading_id, reason=f"{code}: {reason}"[:REASON_KEEP],
                      payload=payload_text(payload))


def code_of(row: Quarantine) -> str:
    """The code a record was made with (the reason's first word)."""
    return row.reason.split(":", 1)[0]
