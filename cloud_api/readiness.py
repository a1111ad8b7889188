"""Readiness (``GET /ready``): can this process do its job right now?

``/health`` answers as long as the process serves HTTP (liveness: restart it if that fails).
Readiness looks at what the job depends on, each check with a short reason: the ingest
worker thread is alive and its loop goes round, the broker connection is up and subscribed,
InfluxDB answers a ping, and the oldest message in hand is not older than a limit. A process
without ingest (API only) has the InfluxDB check alone. Nothing here raises: a check that
cannot tell says not ok, with why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cloud_api.influx import TimeSeriesStore

if TYPE_CHECKING:
    from cloud_api.ingest import IngestStats, LatencyWindow

DEFAULT_MAX_LAG_S = 30.0  # ``vigie cloud run --ready-max-lag``
STALL_S = 30.0  # the worker loop goes round every 0.2 s, also while InfluxDB is retried
PING_TIMEOUT_S = 2.0


class IngestView(Protocol):
    """What readiness and metrics read of an ingest worker (``cloud_api.ingest.Ingest``)."""

    stats: IngestStats
    latency: LatencyWindow

    def lag_s(self) -> float: ...


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ok else "not ready",
                "checks": {c.name: {"ok": c.ok, "reason": c.reason} for c in self.checks}}


class _Ping:
    """``store.ping()`` in a daemon thread, waited for ``timeout_s`` at most. One ping in
    flight at a time: a hung InfluxDB does not pile up threads, the next call waits on it."""

    def __init__(self, ping: Callable[[], bool], timeout_s: float) -> None:
        self._ping = ping
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._done: threading.Event | None = None
        self._result: tuple[bool, str] = (False, "not pinged yet")

    def _run(self, done: threading.Event) -> None:
        try:
            answered = bool(self._ping())
            self._result = (answered, "answers ping" if answered
                            else "no answer to ping (down or not InfluxDB)")
        except Exception as exc:  # a store adapter should not raise; readiness never does
            self._result = (False, f"ping failed: {type(exc).__name__}")
        finally:
            done.set()

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            done = self._done
            if done is None or done.is_set():
                done = self._done = threading.Event()
                threading.Thread(target=self._run, args=(done,), name="ready-ping",
                                 daemon=True).start()
        if not done.wait(self.timeout_s):
            return False, f"no answer to ping within {self.timeout_s:g} s"
        return self._result


class Readiness:
    """The checks of one process; calling it runs them (``ApiContext.readiness``).

    ``worker`` is the thread running ``ingest.run`` (``cloud_api.app.run_cloud``); with an
    ingest and no worker, the ingest is reported as not started.
    """

    def __init__(self, store: TimeSeriesStore, ingest: IngestView | None = None,
                 worker: threading.Thread | None = None, *,
                 max_lag_s: float = DEFAULT_MAX_LAG_S, stall_s: float = STALL_S,
                 ping_timeout_s: float = PING_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ingest = ingest
        self.worker = worker
        self.max_lag_s = max_lag_s
        self.stall_s = stall_s
        self._clock = clock
        self._ping = _Ping(store.ping, ping_timeout_s)

    def __call__(self) -> Report:
        checks: list[Check] = []
        if self.ingest is not None:
            checks += [self._worker(self.ingest), self._broker(self.ingest)]
        checks.append(self._influxdb())
        if self.ingest is not None:
            checks.append(self._lag(self.ingest))
        return Report(tuple(checks))

    def _worker(self, ingest: IngestView) -> Check:
        if self.worker is None:
            return Check("ingest_worker", False, "not started")
        if not self.worker.is_alive():
            return Check("ingest_worker", False, "thread has stopped (see the log)")
        idle = self._clock() - ingest.stats.loop_at
        if idle > self.stall_s:
            return Check("ingest_worker", False, f"loop stalled for {idle:.0f} s "
                                                 f"(limit {self.stall_s:g} s)")
        return Check("ingest_worker", True, "running")

    @staticmethod
    def _broker(ingest: IngestView) -> Check:
        if not ingest.stats.connected:
            return Check("broker", False, "not connected")
        if not ingest.stats.subscribed:
            return Check("broker", False, "connected, not subscribed")
        return Check("broker", True, "connected and subscribed")

    def _influxdb(self) -> Check:
        ok, reason = self._ping()
        return Check("influxdb", ok, reason)

    def _lag(self, ingest: IngestView) -> Check:
        try:
            lag = ingest.lag_s()
        except Exception as exc:  # never raise from a readiness probe
            return Check("ingest_lag", False, f"unknown: {type(exc).__name__}")
        return Check("ingest_lag", lag <= self.max_lag_s,
                     f"oldest message in hand {lag:.1f} s (limit {self.max_lag_s:g} s)")
