"""A shared POC analyzer on a care ward: each result for the resident just tested.

``WardAnalyzerSim`` plays either a fixed script of ``(patient id, test)`` or endless random
rounds over a list of residents (with, now and then, a patient id the gateway does not
know: a new admission, a typo at the analyzer's keypad). Each result is one E1394 message
(H, P with the patient id, O, R, L) sent through ``PtyDevice`` like ``PocAnalyzerSim``.

``start_ward_analyzer`` is the launcher the demo uses: a running pty device whose slave
path a gateway opens as its serial port.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from firmware_sim.serial.astm_sim import PocAnalyzerSim, PocTest, Timers, _header, astm_escape
from firmware_sim.serial.pty_device import PtyDevice

__all__ = ["ROUND_TESTS", "WardAnalyzerSim", "random_test", "start_ward_analyzer"]

# Code, unit, plausible range of a frail elderly population (value drawn uniformly), digits.
ROUND_TESTS: tuple[tuple[str, str, float, float, int], ...] = (
    ("INR", "INR", 1.0, 4.2, 1),
    ("HBA1C", "%", 5.4, 9.8, 1),
    ("NTPROBNP", "pg/mL", 120.0, 6500.0, 0),
    ("CRP", "mg/L", 1.0, 90.0, 0),
    ("GLU", "mg/dL", 65.0, 260.0, 0),
)


def random_test(rng: random.Random) -> PocTest:
    """One test of ``ROUND_TESTS`` with a random plausible value."""
    code, unit, low, high, digits = rng.choice(ROUND_TESTS)
    value = round(rng.uniform(low, high), digits)
    return PocTest(code, f"{value:.{digits}f}", unit)


class WardAnalyzerSim(PocAnalyzerSim):
    """POC analyzer whose results each name their own patient (P record, field 8.1.4).

    ``script``: the results to send, ``interval`` seconds apart, then nothing more. Without a
    script, endless rounds: a random resident (or, with probability ``unknown_share``, one
    of ``unknown`` ids) and a random test every ``interval`` seconds. Device time is
    ``start`` + n minutes, or the wall clock in ``tz`` (naive local time, as instruments
    show it) when ``start`` is None.
    """

    def __init__(self, script: Sequence[tuple[str, PocTest]] | None = None, *,
                 residents: Sequence[str] = (), unknown: Sequence[str] = ("UNREG-01",),
                 unknown_share: float = 0.0, interval: float = 3.0,
                 start: datetime | None = None, tz: str = "UTC", seed: int = 0) -> None:
        super().__init__(tests=[], duration=interval)
        if script is None and not residents:
            raise ValueError("a ward analyzer needs a script or residents")
        self.script = list(script) if script is not None else None
        self.residents = list(residents)
        self.unknown = list(unknown)
        self.unknown_share = unknown_share
        self.first = start
        self.tz = ZoneInfo(tz)
        self.rng = random.Random(seed)
        self.log: list[tuple[str, PocTest]] = []  # what was queued for sending, in order

    def due(self, elapsed: float) -> list[list[str]]:
        """Messages of the results completed after ``elapsed`` seconds, not yet queued."""
        out = []
        while self._more() and elapsed >= (self.sent + 1) * self.duration:
            patient, test = self._next()
            self.sent += 1
            self.log.append((patient, test))
            out.append(self.result_message(self.sent, patient, test))
        return out

    def _more(self) -> bool:
        return self.script is None or self.sent < len(self.script)

    def _next(self) -> tuple[str, PocTest]:
        if self.script is not None:
            return self.script[self.sent]
        pool = self.unknown if self.unknown and self.rng.random() < self.unknown_share \
            else self.residents
        return self.rng.choice(pool), random_test(self.rng)

    def _done_at(self, n: int) -> datetime:
        if self.first is not None:
            return self.first + timedelta(seconds=n * 60)
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0)

    def result_message(self, n: int, patient: str, test: PocTest) -> list[str]:
        """E1394 message of one result: H, P (patient id), O (specimen), R, L."""
        done = self._done_at(n)
        return [_header("SimPOC^2.1^WARD1", done), f"P|1||{astm_escape(patient)}",
                f"O|1|S{n:05d}||^^^{test.code}|R",
                f"R|1|^^^{test.code}|{astm_escape(test.value)}|{test.unit}|"
                f"{astm_escape(test.reference)}|{test.flag}||F||||{done:%Y%m%d%H%M%S}",
                "L|1|N"]


def start_ward_analyzer(residents: Sequence[str], *, interval: float = 3.0,
                        unknown_share: float = 0.15, tz: str = "UTC", seed: int = 0,
                        timers: Timers | None = None) -> PtyDevice:
    """Start a random-rounds analyzer on a new pty; open ``.path``, ``.stop()`` at the end."""
    sim = WardAnalyzerSim(residents=residents, unknown_share=unknown_share, interval=interval,
                          tz=tz, seed=seed)
    device = PtyDevice(sim, timers=timers)
    device.start()
    return device
