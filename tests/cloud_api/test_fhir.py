"""FHIR R4 export: a searchset Bundle that a FHIR model library accepts, vital-signs profile.

Validated with ``fhir.resources`` (its ``R4B`` models: R4B changed nothing in Observation or
Bundle that this export uses).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from cloud_api import fhir
from cloud_api.points import ns
from tests.cloud_api.api_kit import T0, Api

UCUM = "http://unitsofmeasure.org"


def _add(api: Api, kind: str, value: float | None, unit: str, minutes: int, rid: str,
         device: str = "dev-alpha") -> None:
    api.store.points.append({"patient": api.alpha.patient, "site": api.alpha.site, "kind": kind,
                             "time": ns(T0 + timedelta(minutes=minutes)), "value": value,
                             "unit": unit, "id": rid, "device": device})


@pytest.fixture
def bundle(api: Api) -> dict[str, Any]:
    _add(api, "weight", 81.4, "kg", 10, "w1", "scale-1")
    _add(api, "bp_systolic", 142, "mm[Hg]", 20, "sys1", "bpm-1")
    _add(api, "bp_diastolic", 88, "mm[Hg]", 20, "dia1", "bpm-1")
    _add(api, "bp_mean", 106, "mm[Hg]", 20, "map1", "bpm-1")
    _add(api, "heart_rate", 71, "/min", 20, "hr1", "bpm-1")
    _add(api, "spo2", 95, "%", 30, "ox1", "oxi-1")
    _add(api, "body_temperature", 37.2, "Cel", 40, "temp1", "thermo-1")
    _add(api, "hba1c", 7.1, "%", 50, "a1c1", "poc-1")
    _add(api, "inr", 2.4, "{INR}", 50, "inr1", "poc-1")
    _add(api, "glucose", None, "mg/dL", 60, "g-absent", "gluco-1")
    _add(api, "battery_level", 80, "%", 60, "bat1", "gluco-1")
    resp = api.client.get("/fhir/Observation", headers=api.token("nurse-alpha"),
                          params=[("patient", f"Patient/{api.alpha.patient}"),
                                  ("date", "ge2026-05-01"), ("date", "lt2026-05-02")])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = resp.json()
    return body


def _by_code(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in body["entry"]}


def test_the_bundle_validates_as_fhir_r4(bundle: dict[str, Any]) -> None:
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "searchset"
    # 3 seeded glucose readings + 11 here; the 3 pressures make one; no battery level
    assert parsed.total == len(parsed.entry or []) == 3 + 11 - 2 - 1


def test_blood_pressure_is_one_panel_with_components(bundle: dict[str, Any]) -> None:
    bp = _by_code(bundle)["85354-9"]
    assert bp["meta"]["profile"][-1].endswith("/bp")
    parts = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in bp["component"]}
    assert parts["8480-6"] == {"value": 142.0, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
    assert parts["8462-4"]["value"] == 88.0 and parts["8478-0"]["value"] == 106.0
    assert "valueQuantity" not in bp


def test_vital_signs_and_laboratory_categories(bundle: dict[str, Any]) -> None:
    obs = _by_code(bundle)
    category = {code: o["category"][0]["coding"][0]["code"] for code, o in obs.items()}
    assert category == {"29463-7": "vital-signs", "85354-9": "vital-signs",
                        "8867-4": "vital-signs", "59408-5": "vital-signs",
                        "8310-5": "vital-signs", "4548-4": "laboratory", "34714-6": "laboratory",
                        "41653-7": "laboratory"}
    assert obs["29463-7"]["valueQuantity"]["code"] == "kg"
    assert obs["8310-5"]["valueQuantity"]["code"] == "Cel"
    assert obs["34714-6"]["valueQuantity"]["code"] == "{INR}"
    assert {c["code"] for c in obs["59408-5"]["code"]["coding"]} == {"59408-5", "2708-6"}
    assert obs["29463-7"]["subject"] == {"reference": "Patient/p-alpha-1"}


def test_a_special_value_says_why_it_is_absent(bundle: dict[str, Any]) -> None:
    glucose = _by_code(bundle)["41653-7"]
    assert "valueQuantity" not in glucose
    assert glucose["dataAbsentReason"]["coding"][0]["code"] == "error"


def test_another_sites_patient_is_not_found(api: Api) -> None:
    resp = api.client.get("/fhir/Observation", headers=api.token("nurse-alpha"),
                          params={"patient": api.bravo.patient})
    assert resp.status_code == 404 and "bravo" not in resp.text.replace(api.bravo.patient, "")


def test_a_bad_date_is_an_outcome_or_a_400_when_strict(api: Api) -> None:
    headers = api.token("nurse-alpha")
    params = {"patient": api.alpha.patient, "date": "ge2026-02-30"}
    lenient = api.client.get("/fhir/Observation", headers=headers, params=params).json()
    assert lenient["total"] == 0 and lenient["entry"][0]["search"]["mode"] == "outcome"
    Bundle.model_validate(lenient)
    strict = api.client.get("/fhir/Observation", params=params,
                            headers={**headers, "Prefer": "handling=strict"})
    assert strict.status_code == 400 and strict.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("params", "start", "end"), [
    (["ge2026-01-01", "lt2026-02-01"], "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
    (["2026-03"], "2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00"),
    (["le2026-03-05", "gt2026-03-01"], "2026-03-02T00:00:00+00:00",
     "2026-03-06T00:00:00+00:00"),
])
def test_date_prefixes(params: list[str], start: str, end: str) -> None:
    span = fhir.date_range(params, fhir.DateRange(*fhir._bound("1970")[:1],
                                                  fhir._bound("2199")[1]))
    assert (span.start.isoformat(), span.end.isoformat()) == (start, end)
