"""A reading's value and times, checked before it is stored or evaluated.

Value: the canonical unit and the plausible range of its kind (``vigie.contract``). Times:
``vigie.contract.time_problem`` against the receiver's clock, so that no stored point can lie
in the future (one reading dated 2200 would otherwise become the patient's latest and hide
every real one from the rules) or before the floor.
"""

from __future__ import annotations

from datetime import datetime

from vigie.contract import Reading, plausibility_problem, time_problem


def reading_problem(reading: Reading, now: datetime) -> tuple[str, str] | None:
    """(code, reason) when the reading must be quarantined, else None."""
    problem = plausibility_problem(reading.kind, reading.value, reading.unit)
    if problem:
        return "implausible", problem
    problem = time_problem(reading.measured_at, reading.received_at, now)
    if problem:
        return "time", problem
    return None
