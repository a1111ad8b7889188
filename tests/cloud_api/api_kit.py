"""The API in process: a SQLite file, a fake time-series store, two care sites of data.

Site ``site-alpha`` and site ``site-bravo`` each have a gateway, a patient with readings, an
open alert, a quarantined payload and a stream gap. Everything of site B carries the word
``bravo`` so a test can tell at a glance whether anything of B leaked into a response.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import accounts
from cloud_api.api import ApiContext, create_app
from cloud_api.db import (
    Alert,
    AlertEvent,
    Base,
    Device,
    Gap,
    Gateway,
    Quarantine,
    make_engine,
    make_sessions,
)
from cloud_api.points import UNATTRIBUTED, ns
from cloud_api.security import TokenIssuer
from cloud_api.tenancy import register_patient
from tests.dbkit import database_url

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what the project uses
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
SECRET = b"k" * 48
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

# username -> (role, sites)
USERS: dict[str, tuple[str, list[str]]] = {
    "root": ("admin", []),
    "admin-alpha": ("admin", ["site-alpha"]),
    "nurse-alpha": ("nurse", ["site-alpha"]),
    "physician-alpha": ("physician", ["site-alpha"]),
    "nurse-bravo": ("nurse", ["site-bravo"]),
}
SITE_A_USERS = ("admin-alpha", "nurse-alpha", "physician-alpha")


@dataclass
class FakeStore:
    """Just enough of InfluxQL for the API: tag (and ``id``) equality filters, where a
    condition ``(site = 'a' OR site = 'b')`` keeps either; ``SELECT *`` returns every key;
    ``DELETE`` removes what matches; writes keep the line's tags and a few fields."""

    flavour: str = "fake"
    points: list[dict[str, Any]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def write(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.lines.append(line)
            head, fields, stamp = line.rsplit(" ", 2)
            point: dict[str, Any] = dict(t.split("=", 1) for t in head.split(",")[1:])
            point.update(re.findall(r'(\w+)="([^"]*)"', fields))
            value = re.search(r"(?:^|,)value=([0-9.eE+-]+)", fields)
            point.update(time=int(stamp), value=float(value.group(1)) if value else None)
            self.points.append(point)

    def _match(self, p: dict[str, Any], influxql: str) -> bool:
        wanted: dict[str, set[str]] = {}
        for k, v in re.findall(r"(\w+) = '([^']*)'", influxql):
            wanted.setdefault(k, set()).add(v)
        return all(p.get(k) in vs for k, vs in wanted.items())

    def query(self, influxql: str) -> list[dict[str, Any]]:
        self.queries.append(influxql)
        if influxql.startswith("DELETE"):
            self.points = [p for p in self.points if not self._match(p, influxql)]
            return []
        cols = ["time", "value", "unit", "id", "device", "original_value", "original_unit",
                "time_trusted"]
        if influxql.startswith("SELECT *"):
            cols = ["time", "value", "unit", "id", "device", "gateway", "site", "kind",
                    "patient"]
        series: dict[str, list[list[Any]]] = {}
        for p in self.points:
            if self._match(p, influxql):
                series.setdefault(p["kind"], []).append([p.get(c) for c in cols])
        return [{"name": "observation", "tags": {"kind": k}, "columns": cols, "values": v}
                for k, v in series.items()]

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class Site:
    site: str
    gateway: str
    patient: str
    alert_id: int = 0
    device: str = ""
    reading: str = ""

    def ids(self) -> dict[str, Any]:
        """Values for every path parameter of the API."""
        return {"patient": self.patient, "alert_id": self.alert_id, "gateway_id": self.gateway,
                "device_id": self.device, "reading_id": self.reading}


@dataclass
class Api:
    client: TestClient
    ctx: ApiContext
    store: FakeStore
    alpha: Site
    bravo: Site

    def token(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        resp = self.client.post("/token", data={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def session(self) -> Session:
        return self.ctx.sessions()


def _seed_site(session: Session, s: Site, store: FakeStore, word: str) -> None:
    session.add(Gateway(id=s.gateway, site=s.site, status="online", last_seen=T0))
    register_patient(session, s.patient, s.site)
    alert = Alert(patient_id=s.patient, rule="glucose_low_l2", severity="urgent",
                  category="glucose", state="open", opened_at=T0, last_at=T0, raised_at=T0,
                  value=45.0, message=f"{word}-message", late=False, count=1)
    session.add(alert)
    session.flush()
    s.alert_id = alert.id
    session.add(AlertEvent(alert_id=alert.id, seq=1, at=T0, who="system", from_state=None,
                           to_state="open", comment=f"{word}-comment"))
    session.add(Quarantine(received_at=T0, topic=f"vigie/v1/gateways/{s.gateway}/observations",
                           gateway_id=s.gateway, reading_id=None, reason=f"{word}-reason",
                           payload=f'{{"patient": "{s.patient}"}}'))
    session.add(Gap(gateway_id=s.gateway, device_id=f"dev-{word}", first_seq=3, last_seq=5,
                    detected_at=T0))
    s.device, s.reading = f"scale-{word}", f"unattributed-{word}"
    session.add(Device(id=s.device, site_id=s.site, gateway_id=s.gateway, shared=True,
                       updated_at=T0, updated_by="seed"))
    store.points.append({"patient": UNATTRIBUTED, "site": s.site, "kind": "weight",
                         "gateway": s.gateway, "time": ns(T0), "value": 71.5, "unit": "kg",
                         "id": s.reading, "device": s.device})
    for i in range(3):
        store.points.append({"patient": s.patient, "site": s.site, "kind": "glucose",
                             "time": ns(T0 + timedelta(minutes=i)), "value": 100.0 + i,
                             "unit": "mg/dL", "id": f"{word}-{i}", "device": f"dev-{word}",
                             "time_trusted": True})


def seed(sessions: sessionmaker[Session], store: FakeStore) -> tuple[Site, Site]:
    alpha = Site("site-alpha", "gw-alpha", "p-alpha-1")
    bravo = Site("site-bravo", "gw-bravo", "p-bravo-7")
    with sessions.begin() as session:
        _seed_site(session, alpha, store, "alpha")
        _seed_site(session, bravo, store, "bravo")
        for username, (role, sites) in USERS.items():
            accounts.add_user(session, username, PASSWORD, role, sites)
    return alpha, bravo


def make_api(tmp_path: Path, tokens: TokenIssuer | None = None, *,
             raise_server_exceptions: bool = True) -> Iterator[Api]:
    engine = make_engine(database_url(tmp_path, "api"))
    sessions = make_sessions(engine)
    store = FakeStore()
    alpha, bravo = seed(sessions, store)
    ctx = ApiContext(store=store, sessions=sessions, tokens=tokens or TokenIssuer(SECRET))
    with TestClient(create_app(ctx), raise_server_exceptions=raise_server_exceptions
                    ) as client:
        yield Api(client, ctx, store, alpha, bravo)
    engine.dispose()


def table_of(model: type[Base]) -> Table:
    """The model's Table, for Core statements (SQLAlchemy types ``__table__`` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
