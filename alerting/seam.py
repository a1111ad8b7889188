"""The seam between ingest and the rules: ingest feeds stored readings, rules emit signals.

Ingest only knows ``Evaluator``; swapping the rule engine never touches ingest. A signal is
not an alert yet: the alert store turns signals into alerts with a lifecycle (one open alert
per patient and rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from alerting.messages import Text
from vigie.contract import Reading


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"


class Category(StrEnum):
    CLINICAL = "clinical"
    ADHERENCE = "adherence"
    TECHNICAL = "technical"


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """A rule's verdict on one reading: raise (or keep raised) or clear."""

    patient_id: str
    rule: str
    severity: Severity
    category: Category
    time: datetime  # measurement time of the reading that raised or cleared it
    value: float | None
    message: str
    reading_id: str | None = None
    late: bool = False  # raised from a reading measured long before it arrived
    clear: bool = False  # the condition no longer holds: the store may resolve the alert
    text: Text | None = None  # ``message`` as key and arguments, for other languages


class Evaluator(Protocol):
    def evaluate(self, reading: Reading) -> list[AlertSignal]:
        """Update per-patient state with a stored reading and return the signals it causes.

        Must be idempotent for a reading already seen (same id): ingest may redeliver.
        """
        ...


class Clocked(Protocol):
    """An evaluator with rules that fire on the passing of time (silence, non-transmission).

    Ingest calls ``tick`` with its wall clock every few seconds, and ``heartbeat`` when a
    gateway's status message arrives.
    """

    def tick(self, now: datetime) -> list[AlertSignal]: ...

    def heartbeat(self, gateway_id: str, at: datetime) -> None: ...


@runtime_checkable
class Prepares(Protocol):
    """An evaluator that can get ready for a batch of readings at once (warm every patient it
    has not met yet with one round trip to the store instead of one per patient)."""

    def prepare(self, readings: Sequence[Reading]) -> None: ...


@runtime_checkable
class Forgets(Protocol):
    """An evaluator that can drop its state of some patients (after a failed transaction,
    so that their readings are evaluated again from storage)."""

    def forget(self, patient_ids: Iterable[str]) -> None: ...


@runtime_checkable
class Configurable(Protocol):
    """An evaluator whose per-patient settings the care team edits while it runs."""

    def set_patient_settings(self, patient_id: str, settings: Mapping[str, Any] | None
                             ) -> None:
        """Replace a patient's settings (JSON-shaped, as stored); None: back to defaults.
        Raises ValueError for settings the rules refuse."""
        ...
