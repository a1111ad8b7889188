"""Simulator source: the demo's simulated patients, in accelerated time.

Simulated time starts ``lookback_days`` ago and runs ``speed`` times faster than real time
until it reaches now, then follows real time; so a demo fills days of history in a minute
and ends with readings measured "now". With ``live_interval_s`` > 0, once caught up each
patient measures every that many real seconds (their next simulated value, taken now), so a
demo keeps showing fresh readings and the alerts they raise.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from firmware_sim.patients import PARIS, SimPatient
from gateway.errors import ConfigError, OutboxFull
from gateway.intake import Intake
from gateway.sources.base import Source
from vigie.contract import Kind, Observation, now_utc, to_canonical

log = logging.getLogger(__name__)


class SimSource(Source):
    kind = "sim"
    resumable = True

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        try:
            self.patients = [SimPatient(patient_id=p["patient"], device_id=p["device"],
                                        profile=p["profile"], seed=int(options.get("seed", 1)),
                                        clock_offset_s=float(p.get("clock_offset_s", 0)),
                                        unit=p.get("unit", ""))
                             for p in options["patients"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"sim source {name!r}: bad 'patients' entry ({exc})") from exc
        self.speed = float(options.get("speed", 3600.0))
        self.lookback = timedelta(days=float(options.get("lookback_days", 14)))
        self.tick = float(options.get("tick_s", 0.1))
        self.live_interval = float(options.get("live_interval_s", 0.0))

    def _clock(self, real_start: datetime, sim_start: datetime) -> datetime:
        elapsed = (now_utc() - real_start).total_seconds()
        return min(sim_start + timedelta(seconds=elapsed * self.speed), now_utc())

    async def run(self, intake: Intake) -> None:
        real_start = now_utc()
        saved = intake.outbox.cursor(self.name)
        sim_start = real_start - self.lookback
        done_until = datetime.fromisoformat(saved) if saved else sim_start
        while True:
            until = self._clock(real_start, sim_start)
            if self.live_interval > 0 and until >= now_utc() - timedelta(seconds=1):
                await self._live(intake, until)
                return
            if until > done_until:
                try:
                    self._emit(intake, done_until, until)
                    done_until = until
                except OutboxFull:
                    await self.refused_pause()
                    continue
            await asyncio.sleep(self.tick)

    async def _live(self, intake: Intake, start: datetime) -> None:
        """Caught up: each patient measures every ``live_interval`` s, stamped now."""
        streams = [(p, p.readings(start, start + timedelta(days=3650))) for p in self.patients]
        gap = self.live_interval / max(1, len(streams))  # stagger the patients
        while True:
            for patient, stream in streams:
                r = next(stream)
                shown = (now_utc() + timedelta(seconds=patient.clock_offset_s)).astimezone(
                    PARIS).replace(tzinfo=None)
                obs = self._observation(r.kind, r.value, r.unit, shown)
                while True:
                    try:
                        intake.take(patient.device_id, [obs])
                        break
                    except OutboxFull:
                        await self.refused_pause()
                await asyncio.sleep(gap)

    def _emit(self, intake: Intake, start: datetime, end: datetime) -> None:
        cursor = (self.name, end.isoformat())
        for patient in self.patients:
            obs = [self._observation(r.kind, r.value, r.unit, r.device_time)
                   for r in patient.readings(start, end)]
            if obs:
                intake.take(patient.device_id, obs, cursor=cursor)
        intake.outbox.put([], cursor=cursor)

    @staticmethod
    def _observation(kind_raw: str, raw: float, unit: str, device_time: datetime) -> Observation:
        kind = Kind(kind_raw)
        value, unit_c, orig_v, orig_u = to_canonical(kind, raw, unit)
        return Observation(kind=kind, value=value, unit=unit_c, device_time=device_time,
                           original_value=orig_v, original_unit=orig_u)
