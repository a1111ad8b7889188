"""Per-patient rule state, ordered by measurement time (never by arrival time).

Times are float POSIX seconds inside the engine (cheap to compare and subtract); datetimes
only at the edges. A ``Series`` keeps the samples of one kind sorted by (measured time, id),
so a reading that arrives late or out of order lands where it belongs and every window
query sees the same data whatever the arrival order was.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerting.messages import Text
from alerting.seam import Severity
from vigie.contract import Kind

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
_MAX_ID = "\U0010ffff"


def ts(when: datetime) -> float:
    return when.timestamp()


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one kind for one patient, as the rules see it."""

    t: float  # measurement time, POSIX seconds
    value: float
    id: str
    received: float  # gateway receive time, POSIX seconds
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's result at one evaluation point (a sample's time, or a day boundary)."""

    severity: Severity
    value: float | None
    message: str  # English, rendered from ``text``
    text: Text | None = None  # message key and arguments (``alerting.messages``)


class Series:
    """Samples of one kind, sorted by (time, id); window queries by bisection.

    Samples older than ``archived_before`` live in a compact archive of (time, value) pairs,
    16 bytes each instead of about 450 for a ``Sample`` and its id: what the long windows of
    daily summaries read (14 days of 5-minute CGM is 4,032 values a patient), while the
    level rules only need the last hours as samples. An archived value has no id; a second
    value at the same time with the same value is taken for a redelivery of it.
    """

    __slots__ = ("_arch_t", "_arch_v", "_keys", "_samples", "archived_before")

    def __init__(self) -> None:
        self._keys: list[tuple[float, str]] = []
        self._samples: list[Sample] = []
        self._arch_t = array("d")
        self._arch_v = array("d")
        self.archived_before = -math.inf

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def insert(self, sample: Sample) -> None:
        key = (sample.t, sample.id)
        at = bisect.bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._samples.insert(at, sample)

    @property
    def latest(self) -> Sample | None:
        """The latest sample kept as a sample (not archived)."""
        return self._samples[-1] if self._samples else None

    @property
    def archived(self) -> int:
        """How many values the archive holds."""
        return len(self._arch_t)

    @property
    def last_time(self) -> float | None:
        """The latest measurement time, archive included."""
        if self._samples:
            return self._samples[-1].t
        return self._arch_t[-1] if self._arch_t else None

    def archive_before(self, t: float) -> list[Sample]:
        """Move the samples older than ``t`` to the archive; return them (the caller
        forgets their ids)."""
        if t <= self.archived_before:
            return []
        lo = self._lo(t)
        moved = self._samples[:lo]
        del self._keys[:lo], self._samples[:lo]
        for sample in moved:  # all later than anything archived before
            self._arch_t.append(sample.t)
            self._arch_v.append(sample.value)
        self.archived_before = t
        return moved

    def in_archive(self, t: float, value: float) -> bool:
        """Whether the archive holds this value at this time (a redelivery)."""
        lo, hi = bisect.bisect_left(self._arch_t, t), bisect.bisect_right(self._arch_t, t)
        return any(self._arch_v[i] == value for i in range(lo, hi))

    def archive(self, t: float, value: float) -> None:
        """Add a value older than ``archived_before`` straight to the archive."""
        at = bisect.bisect_right(self._arch_t, t)
        self._arch_t.insert(at, t)
        self._arch_v.insert(at, value)

    def window(self, start: float, end: float) -> tuple[float | None, list[float]]:
        """The first time and the values with start <= t <= end, archive included."""
        lo = bisect.bisect_left(self._arch_t, start)
        hi = bisect.bisect_right(self._arch_t, end)
        values = list(self._arch_v[lo:hi])
        first = self._arch_t[lo] if hi > lo else None
        samples = self.between(start, end)
        if first is None and samples:
            first = samples[0].t
        values += [sample.value for sample in samples]
        return first, values

    @property
    def first(self) -> Sample | None:
        return self._samples[0] if self._samples else None

    def _lo(self, t: float) -> int:
        return bisect.bisect_left(self._keys, (t, ""))

    def _hi(self, t: float) -> int:
        return bisect.bisect_right(self._keys, (t, _MAX_ID))

    def between(self, start: float, end: float) -> list[Sample]:
        """Samples with start <= t <= end."""
        return self._samples[self._lo(start):self._hi(end)]

    def values(self, start: float, end: float) -> list[float]:
        return [s.value for s in self.between(start, end)]

    def last_at_or_before(self, t: float) -> Sample | None:
        hi = self._hi(t)
        return self._samples[hi - 1] if hi else None

    def before(self, sample: Sample) -> Sample | None:
        """The sample just before ``sample`` in (time, id) order."""
        at = bisect.bisect_left(self._keys, (sample.t, sample.id))
        return self._samples[at - 1] if at else None

    def after(self, sample: Sample, until: float) -> list[Sample]:
        """Samples strictly after ``sample`` in (time, id) order, up to ``until``."""
        at = bisect.bisect_right(self._keys, (sample.t, sample.id))
        return self._samples[at:self._hi(until)]

    def last_n(self, n: int) -> list[Sample]:
        return self._samples[-n:]

    def remove(self, t: float, sample_id: str) -> bool:
        """Take out the sample (t, sample_id); False if there is none."""
        at = bisect.bisect_left(self._keys, (t, sample_id))
        if at == len(self._keys) or self._keys[at] != (t, sample_id):
            return False
        del self._keys[at], self._samples[at]
        return True

    def prune_before(self, t: float) -> list[Sample]:
        """Drop samples older than ``t``, archived ones too; return the samples dropped
        (the caller forgets their ids)."""
        lo = self._lo(t)
        dropped = self._samples[:lo]
        del self._keys[:lo], self._samples[:lo]
        old = bisect.bisect_left(self._arch_t, t)
        del self._arch_t[:old], self._arch_v[:old]
        return dropped


@dataclass(slots=True)
class DeviceInfo:
    gateway_id: str
    last_received: float
    recent: list[float] = field(default_factory=list)  # last measurement times, for cadence
    cadence: float | None = None  # median interval of ``recent``, None below 5 times

    def note(self, measured: float, received: float, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.last_received = max(self.last_received, received)
        bisect.insort(self.recent, measured)
        del self.recent[:-13]
        gaps = sorted(b - a for a, b in zip(self.recent, self.recent[1:], strict=False))
        self.cadence = gaps[len(gaps) // 2] if len(gaps) >= 4 else None

    def median_interval(self) -> float | None:
        return self.cadence


LedgerKey = tuple[str, float, str]  # (rule id, evaluation time, sample id or "")


@dataclass(slots=True)
class PatientState:
    """Everything the engine remembers about one patient."""

    patient_id: str
    series: dict[Kind, Series] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    # ids loaded by the warm-up: stored, but their rules may never have run (a worker killed
    # between its InfluxDB write and its alert transaction); the first delivery evaluates them
    unevaluated: set[str] = field(default_factory=set)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    ledger: dict[LedgerKey, Finding] = field(default_factory=dict)
    raised: dict[str, Severity] = field(default_factory=dict)  # rule -> last severity sent
    since: float = float("inf")  # earliest measurement time seen: silence counts from here
    horizon: dict[Kind, float] = field(default_factory=dict)  # older readings are ignored

    def get(self, kind: Kind) -> Series:
        found = self.series.get(kind)
        if found is None:
            found = self.series[kind] = Series()
        return found

    def last_time(self, kind: Kind) -> float | None:
        series = self.series.get(kind)
        return series.last_time if series is not None else None

    def note_device(self, device_id: str, gateway_id: str, measured: float,
                    received: float) -> None:
        info = self.devices.get(device_id)
        if info is None:
            info = self.devices[device_id] = DeviceInfo(gateway_id, received)
        info.note(measured, received, gateway_id)

    def prune(self, kind: Kind, limit: float, findings_before: Mapping[str, float],
              archive_before: float = -math.inf) -> None:
        """Forget the samples of a kind older than ``limit`` (its longest rule look-back),
        and each of its rules' findings older than that rule's time in ``findings_before``.

        Readings measured before a kind's horizon are ignored from then on (they could not
        change any window), so forgetting their ids does not break idempotency."""
        series = self.series.get(kind)
        if series is None:
            return
        self.horizon[kind] = max(self.horizon.get(kind, limit), limit)
        for sample in [*series.prune_before(limit), *series.archive_before(archive_before)]:
            self.seen.discard(sample.id)
            self.unevaluated.discard(sample.id)
        for key in [k for k in self.ledger
                    if k[0] in findings_before and k[1] < findings_before[k[0]]]:
            del self.ledger[key]
