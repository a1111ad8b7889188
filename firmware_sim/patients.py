"""Simulated patients for the demo: what their home devices measure, in simulated time.

Heart-failure patients weigh themselves every morning (day-to-day noise, one fluid-gain
episode); diabetic patients check capillary glucose four times a day (some hypoglycaemias and
hyperglycaemias). Devices show naive local time on a slightly wrong clock, as real ones do;
some glucometers report in mmol/L. Independent of ``device_drivers``: plain values only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True, slots=True)
class SimReading:
    true_time: datetime  # UTC, ground truth
    device_time: datetime  # naive local time as the device's (offset) clock shows it
    kind: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class SimPatient:
    patient_id: str
    device_id: str
    profile: str  # "heart_failure" or "diabetes"
    seed: int
    clock_offset_s: float = 0.0  # device clock minus true time
    unit: str = ""  # "" -> the profile's usual unit

    def readings(self, start: datetime, end: datetime) -> Iterator[SimReading]:
        """Readings with true time in [start, end), in time order, deterministic by seed."""
        rng = random.Random(f"{self.seed}:{self.patient_id}")
        gen = self._weights if self.profile == "heart_failure" else self._glucose
        for true_time, kind, value, unit in gen(rng, start.astimezone(UTC)):
            if true_time >= end:
                return
            if true_time < start:
                continue
            shown = (true_time + timedelta(seconds=self.clock_offset_s)).astimezone(PARIS)
            yield SimReading(true_time, shown.replace(tzinfo=None), kind, value, unit)

    def _days(self, start: datetime) -> Iterator[datetime]:
        day = datetime(start.year, start.month, start.day, tzinfo=PARIS) - timedelta(days=1)
        while True:
            yield day
            day += timedelta(days=1)

    def _weights(self, rng: random.Random, start: datetime
                 ) -> Iterator[tuple[datetime, str, float, str]]:
        base = rng.uniform(62, 95)
        episode_day = rng.randint(3, 10)  # fluid gain begins on this simulated day
        for n, day in enumerate(self._days(start)):
            if rng.random() < 0.08:
                continue  # a missed morning
            gain = 0.6 * max(0, min(n - episode_day, 6))
            kg = base + gain + rng.gauss(0, 0.35)
            at = (day + timedelta(hours=7, minutes=rng.randint(0, 50))).astimezone(UTC)
            if self.unit == "[lb_av]":
                yield at, "weight", round(kg / 0.45359237, 1), "[lb_av]"
            else:
                yield at, "weight", round(kg, 2), "kg"

    def _glucose(self, rng: random.Random, start: datetime
                 ) -> Iterator[tuple[datetime, str, float, str]]:
        for day in self._days(start):
            for hour in (7, 12, 19, 22):
                roll = rng.random()
                if roll < 0.05:
                    mgdl = rng.uniform(42, 66)  # hypoglycaemia
                elif roll < 0.10:
                    mgdl = rng.uniform(255, 330)  # hyperglycaemia
                else:
                    mgdl = min(240.0, max(75.0, rng.gauss(145, 30)))
                at = (day + timedelta(hours=hour, minutes=rng.randint(0, 40))).astimezone(UTC)
                if self.unit == "mmol/L":
                    yield at, "glucose", round(mgdl / 18.016, 1), "mmol/L"
                else:
                    yield at, "glucose", round(mgdl), "mg/dL"
