"""Replay source: readings from a JSON-lines file, as if devices had sent them.

Each line: ``{"device", "kind", "value", "unit", "time"}`` plus optional ``seq`` (device
record number), ``user_index`` and ``patient_ref``. ``time`` is the device's own clock (ISO
8601, naive for local device time). The file position is a durable cursor kept in the outbox
in the same transaction as the readings, so a restart (even after ``kill -9``) continues where
the last committed reading ended: no reading taken twice, none skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, OutboxFull
from gateway.intake import Intake
from gateway.sources.base import Source
from vigie.contract import ContractError, Kind, Observation, to_canonical

log = logging.getLogger(__name__)


def parse_line(text: str) -> tuple[str, Observation]:
    """(device id, observation) of one replay line; raises ContractError with the reason."""
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"not JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise ContractError("a line must be a JSON object")
    device, kind_raw, unit = obj.get("device"), obj.get("kind"), obj.get("unit")
    if not isinstance(device, str) or not isinstance(kind_raw, str) or not isinstance(unit, str):
        raise ContractError("'device', 'kind' and 'unit' must be strings")
    try:
        kind = Kind(kind_raw)
    except ValueError as exc:
        raise ContractError(f"unknown kind {kind_raw!r}") from exc
    raw = obj.get("value")
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
        raise ContractError(f"'value' must be a number or null, got {raw!r}")
    value, unit_c, orig_v, orig_u = to_canonical(kind, None if raw is None else float(raw), unit)
    return device, Observation(
        kind=kind, value=value, unit=unit_c, device_time=_time(obj.get("time")),
        original_value=orig_v, original_unit=orig_u, sequence=_int(obj, "seq"),
        user_index=_int(obj, "user_index"), patient_ref=obj.get("patient_ref"))


def _time(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ContractError("'time' must be an ISO 8601 string")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ContractError(f"bad time {raw!r}") from exc


def _int(obj: dict[str, Any], key: str) -> int | None:
    raw = obj.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ContractError(f"{key!r} must be an integer")
    return raw


class ReplaySource(Source):
    kind = "replay"
    resumable = True

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        if "path" not in options:
            raise ConfigError(f"replay source {name!r} needs 'path'")
        self.path = Path(options["path"])
        self.rate = float(options.get("rate", 0.0))  # lines per second, 0 = as fast as taken
        self.chunk = int(options.get("chunk", 100))
        self.rejected = 0

    async def run(self, intake: Intake) -> None:
        start = int(intake.outbox.cursor(self.name) or 0)
        lines = self.path.read_text().splitlines()
        lineno = start
        while lineno < len(lines):
            group, end = self._group(lines, lineno)
            try:
                if group:
                    intake.take_many(group, cursor=(self.name, str(end)))
                else:
                    intake.outbox.put([], cursor=(self.name, str(end)))
            except OutboxFull:
                await self.refused_pause()
                continue
            lineno = end
            await asyncio.sleep(len(group) / self.rate if self.rate > 0 else 0)
        log.info("replay %s: done (%d lines, %d rejected)", self.name, len(lines), self.rejected)

    def _group(self, lines: list[str], start: int) -> tuple[list[tuple[str, Observation]], int]:
        """Up to ``chunk`` good lines from ``start``; bad lines logged and skipped."""
        group: list[tuple[str, Observation]] = []
        i = start
        while i < len(lines) and len(group) < self.chunk:
            if not lines[i].strip():
                i += 1
                continue
            try:
                dev, obs = parse_line(lines[i])
            except ContractError as exc:
                self.rejected += 1
                log.error("replay %s line %d rejected: %s", self.path, i + 1, exc)
                i += 1
                continue
            group.append((dev, obs))
            i += 1
        return group, i
