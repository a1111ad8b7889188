"""Tenancy: which care site a patient belongs to, and which sites a user may see.

The care team registers patients at their site (the pages, ``POST /patients``); ingest never
creates or moves one: a reading for a patient of no site or of another site than its
gateway's is quarantined (``cloud_api.stages.authorise``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import ColumnElement, insert, select, true, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from cloud_api.db import CareSite, Gateway, Patient, make_engine, make_sessions
from vigie.contract import check_id, now_utc

log = logging.getLogger(__name__)


def ensure_site(session: Session, site_id: str, name: str | None = None) -> CareSite:
    """The care site ``site_id``, created (named after its id unless told) if absent."""
    site = session.get(CareSite, check_id(site_id, "site"))
    if site is None:
        site = CareSite(id=site_id, name=name or site_id)
        session.add(site)
        session.flush()
    return site


def register_gateway(session: Session, gateway_id: str, site: str) -> None:
    """Register ``gateway_id`` at ``site`` (created if absent), as ``POST /gateways`` does
    for a care team; for set-up scripts, tests and benchmarks."""
    ensure_site(session, site)
    row = session.get(Gateway, check_id(gateway_id, "gateway"))
    if row is None:
        row = Gateway(id=gateway_id, status="unknown")
        session.add(row)
    row.site = site
    session.flush()


def register_site(db_url: str, site: str, gateways: Iterable[str] = (),
                  patients: Iterable[str] = ()) -> None:
    """Register gateways and patients at ``site`` in the relational store at ``db_url``, in
    one transaction: what a care team does in the pages before readings count, for set-up
    scripts, tests and benchmarks."""
    engine = make_engine(db_url)
    try:
        with make_sessions(engine).begin() as session:
            ensure_site(session, site)
            for gateway in gateways:
                register_gateway(session, gateway, site)
            register_patients(session, patients, site)
    finally:
        engine.dispose()


CHUNK = 500  # ids per IN (...) query


def register_patients(session: Session, patient_ids: Iterable[str], site: str) -> None:
    """``register_patient`` for many ids at ``site`` (which must exist), in bulk: one query
    per ``CHUNK`` ids to find those already known and one multi-row insert for the others,
    so that registering a territory of 100,000 patients takes seconds, not one round trip
    and one flush per patient."""
    ids = list(dict.fromkeys(check_id(p, "patient") for p in patient_ids))
    known: dict[str, str | None] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        rows = session.execute(select(Patient.id, Patient.site_id).where(Patient.id.in_(chunk)))
        known.update((pid, at) for pid, at in rows)
    now = now_utc()
    new = [{"id": pid, "site_id": site, "first_seen": now} for pid in ids if pid not in known]
    if new:
        session.execute(insert(Patient), new)
    unsited = [pid for pid, at in known.items() if at is None]
    for start in range(0, len(unsited), CHUNK):
        session.execute(update(Patient).where(Patient.id.in_(unsited[start:start + CHUNK]))
                        .values(site_id=site).execution_options(synchronize_session=False))
    for pid, at in known.items():
        if at is not None and at != site:
            log.warning("patient %s is registered at site %s, not moved to %s", pid, at, site)
    session.expire_all()  # rows loaded before the bulk statements show them as they are now


def register_patient(session: Session, patient_id: str, site: str | None) -> str | None:
    """Record that ``patient_id`` is measured at ``site``; returns the patient's site.

    Idempotent, inside the caller's transaction (registration and tests; ingest only checks).
    """
    row = session.get(Patient, patient_id)
    if row is None:
        if site is not None:
            ensure_site(session, site)
        session.add(Patient(id=patient_id, site_id=site, first_seen=now_utc()))
        session.flush()
        return site
    if row.site_id is None and site is not None:
        ensure_site(session, site)
        row.site_id = site
    elif site is not None and row.site_id != site:
        log.warning("a patient of site %s was read by a gateway of site %s; kept at %s",
                    row.site_id, site, row.site_id)
    return row.site_id


def patient_site(session: Session, patient_id: str) -> tuple[bool, str | None]:
    """(known, site) of a patient id."""
    row = session.get(Patient, patient_id)
    return (False, None) if row is None else (True, row.site_id)


def site_clause(sites: frozenset[str] | None,
                column: InstrumentedAttribute[str | None] | InstrumentedAttribute[str]
                ) -> ColumnElement[bool]:
    """SQL condition: ``column`` is one of ``sites`` (None: every site, no condition)."""
    return true() if sites is None else column.in_(sorted(sites))


def patient_clause(sites: frozenset[str] | None, column: InstrumentedAttribute[str]
                   ) -> ColumnElement[bool]:
    """SQL condition: the patient id in ``column`` belongs to one of ``sites`` (None: any)."""
    if sites is None:
        return true()
    return column.in_(select(Patient.id).where(Patient.site_id.in_(sorted(sites))))
