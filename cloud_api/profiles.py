"""Per-patient rule settings edited by the care team (``PUT /patients/{id}``) reach the rule
engine: ingest calls ``sync_profiles`` on its tick, so an edit applies within seconds."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.seam import Configurable
from cloud_api.db import PatientProfile

log = logging.getLogger(__name__)


def sync_profiles(session: Session, engine: Configurable) -> int:
    """Hand every stored profile to the engine (it ignores unchanged ones); returns how many
    were refused. Settings were validated when stored: a refusal means the catalogue changed
    since, and the patient keeps the settings the engine had."""
    refused = 0
    for pid, settings in session.execute(select(PatientProfile.patient_id,
                                                PatientProfile.settings)):
        try:
            engine.set_patient_settings(pid, settings or None)
        except ValueError as exc:
            refused += 1
            log.error("settings of patient %s refused by the rules: %s", pid, exc)
    return refused
