"""Per-patient rule settings edited by the care team (``PUT /patients/{id}``) reach the rule
engine: ingest runs a ``ProfileSync`` on its tick, so an edit applies within seconds."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.seam import Configurable
from cloud_api.db import PatientProfile

log = logging.getLogger(__name__)


class ProfileSync:
    """Hands one engine the profiles changed since its last sync (all of them the first time,
    so a rebuilt engine gets a ProfileSync of its own and starts complete)."""

    def __init__(self, engine: Configurable) -> None:
        self.engine = engine
        self._since: datetime | None = None

    def __call__(self, session: Session) -> int:
        """Returns how many profiles the engine refused. Settings were validated when stored:
        a refusal means the catalogue changed since, and the patient keeps what it had."""
        q = select(PatientProfile.patient_id, PatientProfile.settings,
                   PatientProfile.updated_at)
        if self._since is not None:
            # >=: an edit committed in the same instant as the last one seen is not missed;
            # the engine ignores settings it already has
            q = q.where(PatientProfile.updated_at >= self._since)
        refused = 0
        for pid, settings, updated in session.execute(q):
            self._since = updated if self._since is None else max(self._since, updated)
            try:
                self.engine.set_patient_settings(pid, settings or None)
            except ValueError as exc:
                refused += 1
                log.error("settings of patient %s refused by the rules: %s", pid, exc)
        return refused
