"""MQTT message -> work: total over its input.

Every byte sequence on every subscribed gateway topic ends here as readings, a status, alarms
or a refusal with its code: sizes, nesting, numbers and strings are bounded by the contract's
decoders before anything is kept, and no exception escapes for one message. A message whose
decoding fails in a way no check foresaw (a bug) is refused with the code ``internal`` and
its exception type, and the worker goes on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from cloud_api.stages.refusal import refusal
from cloud_api.stages.validate import reading_problem
from cloud_api.stages.work import Work
from vigie.contract import (
    ContractError,
    check_int,
    decode_alarms,
    decode_batch,
    gateway_from_topic,
    loads_bounded,
    reading_from_json,
)

log = logging.getLogger(__name__)


def decode_message(topic: str, payload: bytes, now: datetime, work: Work) -> None:
    """Add what one gateway message carries to ``work``; never raises ``Exception``."""
    gateway: str | None = None
    try:
        gateway = gateway_from_topic(topic)
        suffix = topic.rsplit("/", 1)[-1]
        if suffix == "observations":
            _observations(topic, payload, gateway, now, work)
        elif suffix == "status":
            _status(payload, gateway, work)
        elif suffix == "alarms":
            work.alarms.append((gateway, decode_alarms(payload, gateway)))
        else:
            raise ContractError(f"no gateway topic ends in {suffix!r}", "topic")
    except ContractError as exc:
        work.quarantine.append(refusal(topic, gateway, exc.code, str(exc), payload))
    except Exception as exc:  # a bug, not the sender's fault: keep the message, go on
        log.exception("decoding a message of %s failed", gateway or topic[:100])
        work.quarantine.append(refusal(topic, gateway, "internal",
                                       f"{type(exc).__name__}: {exc}", payload))


def _observations(topic: str, payload: bytes, gateway: str, now: datetime,
                  work: Work) -> None:
    batch = decode_batch(payload, gateway)
    for raw in batch.readings:
        try:
            reading = reading_from_json(raw, gateway)
        except ContractError as exc:
            rid = raw.get("id") if isinstance(raw, dict) else None
            work.quarantine.append(refusal(topic, gateway, exc.code, str(exc), raw,
                                           rid if isinstance(rid, str) else None))
            continue
        problem = reading_problem(reading, now)
        if problem:
            work.quarantine.append(refusal(topic, gateway, *problem, raw, reading.id))
            continue
        work.readings.append((reading, batch.site))


def _status(payload: bytes, gateway: str, work: Work) -> None:
    if not payload:
        return  # a cleared retained status
    body = loads_bounded(payload)
    if not isinstance(body, dict) or body.get("state") not in ("online", "offline"):
        raise ContractError("bad status: must be {'state': 'online'|'offline', ...}", "status")
    status: dict[str, Any] = {"state": body["state"]}
    if body.get("outbox") is not None:
        status["outbox"] = check_int(body["outbox"], "outbox")
    work.statuses.append((gateway, status))
