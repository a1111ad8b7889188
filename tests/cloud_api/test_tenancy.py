"""Tenancy: a user of site A gets nothing of site B, on every route of the OpenAPI document.

Each route is called by each site-A user with site B's identifiers (patient, alert, site,
gateway) wherever it takes one. The response must not contain anything of B (all of B's data
carries the word ``bravo``), a route naming one of B's resources must answer 404 as if it did
not exist (or 403 when the role does not allow the route at all), and B's state must be
unchanged. A new route fails ``test_every_route_is_classified`` until it is added to
``CALLS`` below, which forces a decision on how it is scoped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_api.db import (
    Alert,
    AlertEvent,
    CareSite,
    Device,
    Gateway,
    Patient,
    RefreshToken,
    User,
)
from tests.cloud_api.api_kit import PASSWORD, SITE_A_USERS, Api
from vigie.contract import Batch, Kind, Reading


@dataclass(frozen=True)
class Call:
    """How to call a route with site B's identifiers; ``names_b``: it names a B resource."""

    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    names_b: bool = False
    own_refresh: bool = False  # the form is a refresh token of the caller's own login


B_USER = {"username": "nurse-bravo-2", "password": "a long enough secret", "role": "nurse",
          "sites": ["site-bravo"]}
CALLS: dict[tuple[str, str], Call] = {
    ("POST", "/token"): Call(form={"username": "nurse-alpha",
                                  "password": "correct horse battery staple"}),
    ("POST", "/token/refresh"): Call(own_refresh=True),
    ("POST", "/logout"): Call(),
    ("GET", "/health"): Call(),
    ("GET", "/ready"): Call(),
    ("GET", "/gateways"): Call(),
    ("GET", "/gateways/pending"): Call(),
    ("GET", "/gaps"): Call(),
    ("GET", "/quarantine"): Call(),
    ("GET", "/patients/{patient}/observations"): Call(
        params={"start": "2000-01-01T00:00:00Z"}, names_b=True),
    ("GET", "/alerts"): Call(params={"patient": "p-bravo-7"}),
    ("POST", "/alerts/{alert_id}/acknowledge"): Call(body={"comment": "bravo?"},
                                                     names_b=True),
    ("GET", "/alerts/{alert_id}/history"): Call(names_b=True),
    ("POST", "/users"): Call(body=B_USER, names_b=True),
    ("GET", "/users"): Call(),
    ("POST", "/sites"): Call(body={"id": "site-bravo-2", "name": "bravo annex"}, names_b=True),
    ("GET", "/audit"): Call(params={"patient": "p-bravo-7"}),
    ("GET", "/sites"): Call(),
    ("GET", "/patients"): Call(),
    ("POST", "/patients"): Call(body={"id": "p-new-1", "site": "site-bravo"}, names_b=True),
    ("GET", "/patients/{patient}"): Call(names_b=True),
    ("PUT", "/patients/{patient}"): Call(body={"profile": ["diabetes"]}, names_b=True),
    ("GET", "/patients/{patient}/trend"): Call(names_b=True),
    ("GET", "/patients/{patient}/aggregates"): Call(params={"kind": "glucose"}, names_b=True),
    ("POST", "/gateways"): Call(body={"id": "gw-new-1", "site": "site-bravo"}, names_b=True),
    ("GET", "/gateways/{gateway_id}"): Call(names_b=True),
    ("GET", "/devices"): Call(),
    ("POST", "/devices"): Call(body={"id": "dev-new-1", "site": "site-bravo"}, names_b=True),
    ("PUT", "/devices/{device_id}"): Call(body={"shared": False}, names_b=True),
    ("GET", "/attribution"): Call(),
    ("POST", "/attribution/{reading_id}"): Call(body={"patient": "p-alpha-1"}, names_b=True),
    ("GET", "/alerts/inbox"): Call(),
    ("POST", "/alerts/{alert_id}/snooze"): Call(body={"until": "2030-01-01T00:00:00Z"},
                                                names_b=True),
    ("POST", "/alerts/{alert_id}/resolve"): Call(body={"comment": "bravo?"}, names_b=True),
    ("GET", "/fhir/Observation"): Call(params={"patient": "p-bravo-7"}, names_b=True),
}


def _routes(api: Api) -> set[tuple[str, str]]:
    paths = api.client.get("/openapi.json").json()["paths"]
    return {(m.upper(), p) for p, methods in paths.items() for m in methods}


def test_every_route_is_classified(api: Api) -> None:
    assert _routes(api) == set(CALLS), "classify new routes in CALLS (tenancy decision)"


def _b_state(api: Api) -> tuple[Any, ...]:
    with api.session() as session:
        alert = session.get(Alert, api.bravo.alert_id)
        device = session.get(Device, api.bravo.device)
        assert alert is not None and device is not None
        events = session.scalar(select(func.count()).where(
            AlertEvent.alert_id == api.bravo.alert_id))
        b_points = sorted((p["id"], p["patient"]) for p in api.store.points
                          if "bravo" in str(p["id"]))
        return (alert.state, events or 0, session.get(User, "nurse-bravo-2") is not None,
                session.get(CareSite, "site-bravo-2") is not None,
                (device.gateway_id, device.patient_id, device.shared), b_points,
                session.scalar(select(func.count()).select_from(Patient)),
                session.scalar(select(func.count()).select_from(Gateway)),
                session.scalar(select(func.count()).where(
                    RefreshToken.username == "nurse-bravo", RefreshToken.revoked.is_(False))))


def _unechoed(text: str, url: str, call: Call) -> str:
    """The response without what the caller sent itself (an error may quote the id asked)."""
    sent = [*url.split("/"), *(call.params or {}).values()]
    for word in sorted(sent, key=len, reverse=True):
        if word:
            text = text.replace(word, "<sent>")
    return text.lower()


@pytest.mark.parametrize("username", SITE_A_USERS)
def test_a_site_a_user_gets_nothing_of_site_b(api: Api, username: str) -> None:
    # B's own staff reads B's data first, so the audit log holds rows about B
    b = api.token("nurse-bravo")
    assert len(api.client.get(f"/patients/{api.bravo.patient}/observations", headers=b,
                              params={"start": "2000-01-01T00:00:00Z"}).json()) == 3
    before = _b_state(api)
    headers = api.token(username)
    for (method, path), call in sorted(CALLS.items()):
        url = path.format(**api.bravo.ids())
        form = call.form
        if call.own_refresh:
            login = {"username": username, "password": PASSWORD}
            form = {"refresh_token": api.client.post("/token", data=login).json()["refresh_token"]}
        resp = api.client.request(method, url, headers=headers, params=call.params,
                                  json=call.body, data=form)
        what = f"{username} {method} {url}: {resp.status_code} {resp.text[:300]}"
        assert "bravo" not in _unechoed(resp.text, url, call), what
        if call.names_b:
            assert resp.status_code in (403, 404), what
        else:
            assert resp.status_code in (200, 403), what
    assert _b_state(api) == before, "site B unchanged"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/patients/{patient}/observations"), ("POST", "/alerts/{alert_id}/acknowledge"),
    ("GET", "/alerts/{alert_id}/history"), ("GET", "/patients/{patient}"),
    ("GET", "/patients/{patient}/trend"), ("GET", "/gateways/{gateway_id}")])
def test_own_site_resources_answer_200(api: Api, method: str, path: str) -> None:
    """The 404s above come from tenancy, not from a route that never works."""
    url = path.format(**api.alpha.ids())
    resp = api.client.request(method, url, headers=api.token("nurse-alpha"), json={})
    assert resp.status_code == 200, resp.text
    assert "alpha" in resp.text


def test_another_sites_patient_and_an_absent_one_look_the_same(api: Api) -> None:
    headers = api.token("nurse-alpha")
    other = api.client.get(f"/patients/{api.bravo.patient}/observations", headers=headers)
    absent = api.client.get("/patients/p-nobody/observations", headers=headers)
    assert other.status_code == absent.status_code == 404
    assert other.json()["detail"].replace(api.bravo.patient, "X") == \
        absent.json()["detail"].replace("p-nobody", "X")
    assert api.store.queries == [], "no time-series query for a patient one may not see"


def test_a_global_admin_sees_both_sites(api: Api) -> None:
    headers = api.token("root")
    alerts = api.client.get("/alerts", headers=headers).json()
    assert {a["patient"] for a in alerts} == {api.alpha.patient, api.bravo.patient}
    assert len(api.client.get("/gateways", headers=headers).json()) == 2


def test_readings_of_a_patient_sent_by_another_sites_gateway_are_not_shown(api: Api) -> None:
    """First site wins: a misconfigured gateway of B cannot add to (or read) A's record."""
    api.store.points.append({"patient": api.alpha.patient, "site": "site-bravo",
                             "kind": "glucose", "time": 1, "value": 99.0, "unit": "mg/dL",
                             "id": "bravo-stray", "device": "dev-bravo"})
    obs = api.client.get(f"/patients/{api.alpha.patient}/observations",
                         headers=api.token("nurse-alpha"),
                         params={"start": "2000-01-01T00:00:00Z"}).json()
    assert len(obs) == 3 and "bravo" not in json.dumps(obs)


def test_mqtt_payload_carries_pseudonymous_ids_only() -> None:
    """No name, birth date or other identity field travels over MQTT: an allow-list."""
    t = datetime(2026, 5, 1, tzinfo=UTC)
    reading = Reading(id="0" * 32, gateway_id="gw-1", device_id="d-1", patient_id="p-0101",
                      stream_seq=1, kind=Kind.WEIGHT, value=80.0, unit="kg", measured_at=t,
                      received_at=t, device_time=None, clock_offset_s=0.0, time_zone=None,
                      time_trusted=True)
    body = json.loads(Batch("gw-1", t, (reading.to_json(),), "ehpad-1").encode())
    assert set(body) == {"v", "gateway", "site", "sent_at", "readings"}
    assert set(body["readings"][0]) == {
        "id", "device", "patient", "seq", "kind", "value", "unit", "measured_at",
        "received_at", "device_time", "clock_offset_s", "tz", "time_trusted",
        "original_value", "original_unit", "device_seq", "flags"}
