"""Capped, jittered exponential backoff chosen by what went wrong.

A device that walked away (``gone``) is retried as soon as it advertises again, after a short
pause; a silent device (``timeout``) and a misbehaving one (``protocol``) wait longer and
longer; a refusal by the consumer (``refused``, outbox full) retries on a steady short rhythm.
A success resets the count.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from device_drivers.ble.sessions.errors import ErrorKind

__all__ = ["Backoff", "BackoffPolicy", "BackoffRule"]


@dataclass(frozen=True, slots=True)
class BackoffRule:
    first_s: float
    cap_s: float
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """Delay after ``failures`` consecutive failures (1 = first failure)."""
        exponent = max(failures - 1, 0)
        return float(min(self.first_s * self.factor ** min(exponent, 32), self.cap_s))


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    gone: BackoffRule = field(default_factory=lambda: BackoffRule(0.5, 30.0))
    timeout: BackoffRule = field(default_factory=lambda: BackoffRule(2.0, 300.0))
    protocol: BackoffRule = field(default_factory=lambda: BackoffRule(10.0, 900.0))
    refused: BackoffRule = field(default_factory=lambda: BackoffRule(1.0, 30.0, 1.5))
    jitter: float = 0.2  # +/- this fraction, so that devices do not retry in lock step

    def rule(self, kind: ErrorKind) -> BackoffRule:
        return {ErrorKind.GONE: self.gone, ErrorKind.TIMEOUT: self.timeout,
                ErrorKind.PROTOCOL: self.protocol, ErrorKind.REFUSED: self.refused}[kind]


class Backoff:
    """Per-device state: consecutive failures and the delay they earn."""

    def __init__(self, policy: BackoffPolicy,
                 rnd: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rnd = rnd
        self.failures = 0

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self, kind: ErrorKind) -> float:
        """Record a failure of ``kind``; the seconds to wait before the next attempt."""
        self.failures += 1
        base = self.policy.rule(kind).delay(self.failures)
        spread = self.policy.jitter * (2.0 * self._rnd() - 1.0)
        return max(base * (1.0 + spread), 0.0)
