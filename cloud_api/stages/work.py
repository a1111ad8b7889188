"""What one batch of MQTT messages amounts to before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud_api.db import Quarantine
from vigie.contract import EdgeAlarm, Reading

Sited = tuple[Reading, str | None]  # a reading and the care site it is stored under


@dataclass
class Work:
    readings: list[Sited] = field(default_factory=list)
    quarantine: list[Quarantine] = field(default_factory=list)
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    alarms: list[tuple[str, list[EdgeAlarm]]] = field(default_factory=list)  # paged on site
    # gateways not registered to a site that sent these messages: id -> (messages, the site
    # their payload claimed), kept for the admins' pending list (``cloud_api.stages.authorise``)
    unregistered: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    def patients(self) -> set[str]:
        return {r.patient_id for r, _ in self.readings if r.patient_id is not None}
