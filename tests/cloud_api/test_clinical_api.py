"""The care team's API in process: patients and settings, devices, attribution, inbox, feed."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from cloud_api.db import AuditEntry
from cloud_api.points import UNATTRIBUTED
from tests.cloud_api.api_kit import Api
from vigie.contract import iso, now_utc


def test_register_a_patient_with_profile_and_rule_settings(api: Api) -> None:
    doc = api.token("physician-alpha")
    body = {"id": "p-alpha-2", "site": "site-alpha", "profile": ["heart_failure", "diabetes"],
            "age_group": "80-89",
            "settings": {"symptoms": True, "thresholds": {"dm.hypoglycaemia": {"l2": 60}}}}
    made = api.client.post("/patients", headers=doc, json=body)
    assert made.status_code == 201, made.text
    got = api.client.get("/patients/p-alpha-2", headers=doc).json()
    assert got["profile"] == ["heart_failure", "diabetes"] and got["age_group"] == "80-89"
    assert got["settings"]["thresholds"] == {"dm.hypoglycaemia": {"l2": 60.0}}
    assert got["settings"]["age"] == 80, "the rules get an age from the age group"
    listed = {p["id"] for p in api.client.get("/patients", headers=doc).json()}
    assert listed == {"p-alpha-1", "p-alpha-2"}


def test_absurd_thresholds_are_refused_and_nurses_do_not_set_them(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    url = f"/patients/{api.alpha.patient}"
    absurd = {"settings": {"thresholds": {"dm.hypoglycaemia": {"l2": 5}}}}
    assert api.client.put(url, headers=api.token("physician-alpha"),
                          json=absurd).status_code == 422
    unknown = {"settings": {"thresholds": {"dm.nonsense": {"x": 1}}}}
    assert api.client.put(url, headers=nurse, json=unknown).status_code == 422
    set_by_nurse = {"settings": {"thresholds": {"dm.hypoglycaemia": {"l2": 60}}}}
    assert api.client.put(url, headers=nurse, json=set_by_nurse).status_code == 403
    profile_only = {"profile": ["diabetes"], "age_group": "70-79"}
    assert api.client.put(url, headers=nurse, json=profile_only).status_code == 200


def test_devices_pair_to_a_gateway_and_go_to_a_patient_or_shared(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    made = api.client.post("/devices", headers=nurse, json={
        "id": "gluco-9", "site": "site-alpha", "family": "ble-glucose"})
    assert made.status_code == 201, made.text
    paired = api.client.put("/devices/gluco-9", headers=nurse, json={
        "gateway": api.alpha.gateway, "patient": api.alpha.patient})
    assert paired.json()["gateway"] == api.alpha.gateway
    assert paired.json()["patient"] == api.alpha.patient
    both = api.client.put("/devices/gluco-9", headers=nurse,
                          json={"patient": api.alpha.patient, "shared": True})
    assert both.status_code == 409
    other_gateway = api.client.put("/devices/gluco-9", headers=nurse,
                                   json={"gateway": api.bravo.gateway})
    assert other_gateway.status_code == 404
    gw = api.client.get(f"/gateways/{api.alpha.gateway}", headers=nurse).json()
    assert gw["online"] is True and {d["id"] for d in gw["devices"]} == {"gluco-9", "scale-alpha"}


def test_a_nurse_assigns_an_unattributed_reading_and_it_is_audited(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    queue = api.client.get("/attribution", headers=nurse).json()
    assert [r["id"] for r in queue] == [api.alpha.reading]
    bad = api.client.post(f"/attribution/{api.alpha.reading}", headers=nurse,
                          json={"patient": api.bravo.patient})
    assert bad.status_code == 404
    done = api.client.post(f"/attribution/{api.alpha.reading}", headers=nurse,
                           json={"patient": api.alpha.patient})
    assert done.status_code == 200, done.text
    mine = [p for p in api.store.points if p["id"] == api.alpha.reading]
    assert [p["patient"] for p in mine] == [api.alpha.patient], "moved, not copied, not lost"
    assert api.client.get("/attribution", headers=nurse).json() == []
    assert any(p["patient"] == UNATTRIBUTED for p in api.store.points), "B's stays queued"
    with api.session() as session:
        row = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "reading.attribute", AuditEntry.outcome == "ok")).one()
    assert row.patient_id == api.alpha.patient and row.detail == {
        "reading": api.alpha.reading, "kind": "weight"}


def test_inbox_snooze_resolve_and_history(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    inbox = api.client.get("/alerts/inbox", headers=nurse).json()
    assert [a["id"] for a in inbox] == [api.alpha.alert_id] and inbox[0]["age_s"] >= 0
    aid = api.alpha.alert_id
    too_long = iso(now_utc() + timedelta(days=2))  # a low's snooze is an hour at most
    assert api.client.post(f"/alerts/{aid}/snooze", headers=nurse,
                           json={"until": too_long}).status_code in (200, 409)
    soon = iso(now_utc() + timedelta(minutes=30))
    snoozed = api.client.post(f"/alerts/{aid}/snooze", headers=nurse,
                              json={"until": soon, "comment": "recheck after lunch"})
    assert snoozed.status_code == 200 and snoozed.json()["state"] == "snoozed"
    resolved = api.client.post(f"/alerts/{aid}/resolve", headers=nurse,
                               json={"comment": "sugar given, 110 mg/dL at 12:20"})
    assert resolved.json()["state"] == "resolved"
    assert api.client.get("/alerts/inbox", headers=nurse).json() == []
    history = api.client.get(f"/alerts/{aid}/history", headers=nurse).json()
    assert history[-1]["to_state"] == "resolved" and "110 mg/dL" in history[-1]["comment"]


def test_the_live_feed_carries_own_site_changes_only(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    api.client.post(f"/alerts/{api.bravo.alert_id}/acknowledge", headers=api.token("root"),
                    json={"comment": "bravo done"})
    api.client.post(f"/alerts/{api.alpha.alert_id}/acknowledge", headers=nurse,
                    json={"comment": "alpha done"})
    with api.client.stream("GET", "/alerts/stream", headers=nurse,
                           params={"after": 0, "seconds": 1.5}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {\"")]
    assert {e["alert"]["id"] for e in events} == {api.alpha.alert_id}
    assert [e["change"] for e in events] == ["open", "acknowledged"]
    assert "bravo" not in text


def test_trend_of_a_patient_downsamples_long_ranges(api: Api) -> None:
    nurse = api.token("nurse-alpha")
    url = f"/patients/{api.alpha.patient}/trend"
    long = api.client.get(url, headers=nurse, params={"days": 90}).json()
    assert long["interval_s"] == 6 * 3600
    assert any("GROUP BY time(6h), kind" in q for q in api.store.queries)
    short = api.client.get(url, headers=nurse, params={
        "start": "2026-05-01T07:00:00Z", "end": "2026-05-01T09:00:00Z"}).json()
    assert short["interval_s"] is None
    assert [p["mean"] for p in short["series"]["glucose"]] == [100.0, 101.0, 102.0]
    assert [a["id"] for a in short["alerts"]] == [api.alpha.alert_id]
