"""Authorise: a message's gateway and patients checked against the care team's registry.

A gateway's identity is the id in its topic: the broker binds it to the certificate's name in
the secure profile (its ACL confines each certificate to its own topics); in the plain
profile, meant for a loopback demo, the id is whatever the client says. The registry (the
``gateways`` and ``patients`` tables, filled by the care team through the API and the pages)
says which site each belongs to. MQTT content is checked against it, never believed:

- a gateway not registered to a site: its readings and alarms are quarantined
  (``unregistered-gateway``) and it is listed for the admins (``PendingGateway``);
- a batch claiming another site than its gateway's: ``wrong-site``;
- a reading or alarm for a patient not registered (``unknown-patient``) or registered at
  another site (``foreign-patient``).

Nothing here creates a site, a patient or a gateway, or moves one. Readings that pass are
stored under their gateway's registered site. Answers are cached (``Registry``) so that the
cost per batch is one query for the ids not seen lately, not one per reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db import Gateway, Patient
from cloud_api.stages.refusal import refusal
from cloud_api.stages.work import Sited, Work
from vigie.contract import alarms_topic, observations_topic

CHUNK: Final = 500  # ids per IN (...) query
_UNKNOWN: Final = "\0unknown"  # a patient id with no row (a site id never contains NUL)


class Registry:
    """Sites of gateways and patients, read in bulk and kept ``ttl_s`` seconds (an answer of
    "not registered" only ``negative_ttl_s``, by default not at all: a gateway registered a
    moment ago is accepted at once, at the price of one query per batch of an unregistered
    one). At most ``max_entries`` answers are kept, whatever ids arrive."""

    def __init__(self, ttl_s: float = 60.0, negative_ttl_s: float = 0.0,
                 max_entries: int = 500_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.negative_ttl_s = ttl_s, negative_ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._gateways: dict[str, tuple[float, str | None]] = {}
        self._patients: dict[str, tuple[float, str | None]] = {}

    def forget(self) -> None:
        self._gateways.clear()
        self._patients.clear()

    def gateway_sites(self, session: Session, ids: Iterable[str]) -> dict[str, str | None]:
        """Registered site of each gateway id; None when it is not registered to one."""
        def load(chunk: Sequence[str]) -> dict[str, str | None]:
            rows = session.execute(select(Gateway.id, Gateway.site).where(Gateway.id.in_(chunk)))
            return {gid: site for gid, site in rows}
        return self._lookup(self._gateways, ids, load, None)

    def patient_sites(self, session: Session, ids: Iterable[str]) -> dict[str, str | None]:
        """Site of each patient id: ``None`` for a patient of no site, ``_UNKNOWN`` for an
        id with no row."""
        def load(chunk: Sequence[str]) -> dict[str, str | None]:
            rows = session.execute(select(Patient.id, Patient.site_id)
                                    .where(Patient.id.in_(chunk)))
            return {pid: site for pid, site in rows}
        return self._lookup(self._patients, ids, load, _UNKNOWN)

    def _lookup(self, cache: dict[str, tuple[float, str | None]], ids: Iterable[str],
                load: Callable[[Sequence[str]], dict[str, str | None]],
                absent: str | None) -> dict[str, str | None]:
        now = self._clock()
        out: dict[str, str | None] = {}
        missing: list[str] = []
        for i in set(ids):
            hit = cache.get(i)
            if hit is not None and hit[0] > now:
                out[i] = hit[1]
            else:
                missing.append(i)
        if len(cache) + len(missing) > self.max_entries:
            cache.clear()  # not a sweep of every entry: its cost would follow the population
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start:start + CHUNK]
            found = load(chunk)
            for i in chunk:
                value = found.get(i, absent)
                ok = value is not None and value != _UNKNOWN
                cache[i] = (now + (self.ttl_s if ok else self.negative_ttl_s), value)
                out[i] = value
        return out


def authorise(work: Work, registry: Registry, session: Session) -> None:
    """Keep in ``work`` what its gateways may send; refuse the rest (see the module)."""
    gateways = {r.gateway_id for r, _ in work.readings} | {g for g, _ in work.statuses} \
        | {g for g, _ in work.alarms}
    if not gateways:
        return
    sites = registry.gateway_sites(session, gateways)
    patients = registry.patient_sites(session, {
        *(r.patient_id for r, _ in work.readings if r.patient_id is not None),
        *(a.patient_id for _, alarms in work.alarms for a in alarms)})

    def seen_unregistered(gateway: str, claimed: str | None) -> None:
        count, before = work.unregistered.get(gateway, (0, None))
        work.unregistered[gateway] = (count + 1, claimed or before)

    def patient_problem(pid: str, site: str) -> tuple[str, str] | None:
        at = patients.get(pid, _UNKNOWN)
        if at == _UNKNOWN:
            return "unknown-patient", f"patient {pid} is not registered (at site {site})"
        if at != site:
            return "foreign-patient", f"patient {pid} is not a patient of site {site}"
        return None

    kept: list[Sited] = []
    for reading, claimed in work.readings:
        gateway = reading.gateway_id
        site = sites.get(gateway)
        problem: tuple[str, str] | None
        if site is None:
            seen_unregistered(gateway, claimed)
            problem = ("unregistered-gateway",
                       f"gateway {gateway} is not registered to a care site")
        elif claimed is not None and claimed != site:
            problem = ("wrong-site", f"batch says site {claimed!r}, gateway {gateway} is "
                                     f"registered at {site!r}")
        elif reading.patient_id is not None:
            problem = patient_problem(reading.patient_id, site)
        else:
            problem = None
        if problem is None:
            kept.append((reading, site))
        else:
            work.quarantine.append(refusal(observations_topic(gateway), gateway, *problem,
                                           reading.to_json(), reading.id))
    work.readings = kept

    statuses = []
    for gateway, body in work.statuses:
        if sites.get(gateway) is None:
            seen_unregistered(gateway, None)  # a status holds no patient data: listed only
        else:
            statuses.append((gateway, body))
    work.statuses = statuses

    alarms = []
    for gateway, some in work.alarms:
        site = sites.get(gateway)
        allowed = []
        for alarm in some:
            problem = (("unregistered-gateway", f"gateway {gateway} is not registered")
                       if site is None else patient_problem(alarm.patient_id, site))
            if problem is None:
                allowed.append(alarm)
            else:
                work.quarantine.append(refusal(alarms_topic(gateway), gateway, *problem,
                                               alarm.to_json()))
        if site is None:
            seen_unregistered(gateway, None)
        if allowed:
            alarms.append((gateway, allowed))
    work.alarms = alarms
