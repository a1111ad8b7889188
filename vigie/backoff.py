"""Capped exponential backoff with full jitter: one implementation for every retry loop
(gateway reconnects, notification channels, on-site paging, serial port reopening).

Full jitter (a delay drawn from [low/2, min(high, low * 2**attempt)]) keeps a fleet of
gateways, or of retrying channels, from hammering a service in lock step when it comes back.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "jittered"]


def jittered(attempt: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (0 for the first retry)."""
    cap = min(high, low * 2 ** min(max(attempt, 0), 30))
    return (rng or random).uniform(low / 2, max(low / 2, cap))


class Backoff:
    """Consecutive failures and the jittered wait they earn; ``reset`` on success."""

    def __init__(self, low: float, high: float, rng: random.Random | None = None) -> None:
        self.low, self.high, self.attempt = low, high, 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = jittered(self.attempt, self.low, self.high, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
