"""The backbone's first rule path: glucose thresholds and "2 kg in 3 days".

Deliberately small; the full engine replaces it behind the same ``Evaluator`` seam.

- ``glucose_low_l2``: glucose < 54 mg/dL, urgent (ADA Standards of Care, level 2 hypoglycaemia).
- ``glucose_low_l1``: 54 <= glucose < 70 mg/dL, warning (level 1 hypoglycaemia).
- ``glucose_high_l2``: glucose > 250 mg/dL, warning (level 2 hyperglycaemia, consensus on
  time in ranges, Battelino 2019).
- ``weight_gain_3d``: weight >= 2 kg above the lowest weight of the previous 3 days, warning
  (ESC heart-failure guidance; caught 11-20% of decompensations in studies: see
  shared/reference/alert-rules.md). Cleared below 1.5 kg (hysteresis).

Time is measurement time. A reading measured more than ``late_after`` before it is evaluated
(``clock``: the cloud's clock, or a replay's) raises its alert marked late: an old value is
never an urgent page, whether it waited in a device, an outbox or a broker queue.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from alerting.seam import AlertSignal, Category, Severity
from vigie.contract import Kind, Reading, now_utc

HistoryLoader = Callable[[str, str, datetime, datetime], list[tuple[datetime, float]]]

WEIGHT_WINDOW = timedelta(days=3)
WEIGHT_GAIN_KG = 2.0
WEIGHT_CLEAR_KG = 1.5


class BasicRules:
    def __init__(self, history: HistoryLoader | None = None,
                 late_after: timedelta = timedelta(hours=1), memory: int = 100_000,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self._history = history
        self._clock = clock
        self._late_after = late_after
        self._weights: dict[str, list[tuple[datetime, float]]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._memory = memory

    def evaluate(self, reading: Reading) -> list[AlertSignal]:
        if reading.patient_id is None or reading.value is None or self._already(reading.id):
            return []
        if "non_patient_data" in reading.flags:
            return []  # control solution, demo mode, cuff inflation: not the patient
        if reading.kind is Kind.GLUCOSE:
            return self._glucose(reading, reading.value)
        if reading.kind is Kind.WEIGHT:
            return self._weight(reading, reading.value)
        return []

    def _already(self, reading_id: str) -> bool:
        if reading_id in self._seen:
            return True
        self._seen[reading_id] = None
        if len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return False

    def _signal(self, r: Reading, rule: str, severity: Severity, message: str,
                clear: bool = False) -> AlertSignal:
        assert r.patient_id is not None  # checked by evaluate()
        late = self._clock() - r.measured_at > self._late_after
        if (late or not r.time_trusted) and severity is Severity.URGENT and not clear:
            severity = Severity.WARNING  # an old value, or one of unknown age, is no page
        return AlertSignal(r.patient_id, rule, severity, Category.CLINICAL, r.measured_at,
                           r.value, message, r.id, late=late and not clear, clear=clear)

    def _glucose(self, r: Reading, mgdl: float) -> list[AlertSignal]:
        out: list[AlertSignal] = []
        low2, low1, high2 = mgdl < 54, 54 <= mgdl < 70, mgdl > 250
        checks = (("glucose_low_l2", low2, Severity.URGENT, f"glucose {mgdl:.0f} mg/dL < 54"),
                  ("glucose_low_l1", low1, Severity.WARNING, f"glucose {mgdl:.0f} mg/dL < 70"),
                  ("glucose_high_l2", high2, Severity.WARNING, f"glucose {mgdl:.0f} mg/dL > 250"))
        for rule, hit, severity, message in checks:
            cleared = 70 <= mgdl <= 250
            if hit or cleared:
                out.append(self._signal(r, rule, severity, message, clear=not hit))
        return out

    def _window(self, patient: str, at: datetime) -> list[tuple[datetime, float]]:
        if patient not in self._weights:
            loaded = self._history(patient, str(Kind.WEIGHT), at - timedelta(days=30),
                                   at + timedelta(days=1)) if self._history else []
            self._weights[patient] = sorted(loaded)
        return self._weights[patient]

    def _weight(self, r: Reading, kg: float) -> list[AlertSignal]:
        assert r.patient_id is not None
        series = self._window(r.patient_id, r.measured_at)
        if (r.measured_at, kg) not in series:
            bisect.insort(series, (r.measured_at, kg))
        start = r.measured_at - WEIGHT_WINDOW
        earlier = [w for t, w in series if start <= t < r.measured_at]
        if not earlier:
            return []
        gain = kg - min(earlier)
        if gain >= WEIGHT_GAIN_KG:
            return [self._signal(r, "weight_gain_3d", Severity.WARNING,
                                 f"weight +{gain:.1f} kg within 3 days")]
        if gain < WEIGHT_CLEAR_KG:
            return [self._signal(r, "weight_gain_3d", Severity.WARNING, "weight gain cleared",
                                 clear=True)]
        return []
