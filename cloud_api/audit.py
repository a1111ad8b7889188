"""Audit log: every read and change of patient data, and every refused attempt.

A row says who, when, which action on which resource (and patient, and site), and the
outcome; never the data itself. A successful action's row is written in the same transaction
as the action (no change without its trail, no data served before its row is committed); a
refused or failed one is written in a transaction of its own, since the action's rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db import AuditEntry
from vigie.contract import now_utc

log = logging.getLogger(__name__)

MAX_PATIENTS_LISTED = 200  # patient ids kept in the detail of a list read


@dataclass
class Note:
    """What a request did, filled in by the route as it learns it."""

    username: str
    action: str
    resource: str
    patient: str | None = None
    site: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def patients(self, ids: Iterable[str]) -> None:
        """Record the patients whose data a list read returned."""
        unique = sorted(set(ids))
        self.detail["count_patients"] = len(unique)
        self.detail["patients"] = unique[:MAX_PATIENTS_LISTED]

    def row(self, outcome: str) -> AuditEntry:
        return AuditEntry(at=now_utc(), username=self.username[:64], action=self.action,
                          resource=self.resource[:512], patient_id=self.patient,
                          site_id=self.site, outcome=outcome, detail=self.detail or None)


def write_apart(sessions: sessionmaker[Session], row: AuditEntry) -> None:
    """Write a row in its own transaction (the action's own rolled back)."""
    with sessions.begin() as session:
        session.add(row)


def entries(session: Session, sites: frozenset[str] | None, *, username: str | None = None,
            patient: str | None = None, since: datetime | None = None, limit: int = 500
            ) -> list[AuditEntry]:
    """Newest first; ``sites`` given: only rows about those sites."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if sites is not None:
        q = q.where(AuditEntry.site_id.in_(sorted(sites)))
    if username:
        q = q.where(AuditEntry.username == username)
    if patient:
        q = q.where(AuditEntry.patient_id == patient)
    if since:
        q = q.where(AuditEntry.at >= since)
    return list(session.scalars(q))
