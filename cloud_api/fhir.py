"""FHIR R4 export of stored readings (sans-I/O): rows in, Observation resources out.

Follows the R4 vital-signs profile (http://hl7.org/fhir/R4/observation-vitalsigns.html):
category ``vital-signs``, a LOINC code, ``valueQuantity`` in UCUM, and blood pressure as one
Observation (panel 85354-9) with systolic 8480-6 and diastolic 8462-4 components, built from
the two readings a monitor takes at one instant. Glucose and the point-of-care results (HbA1c,
INR, NT-proBNP, CRP, creatinine) are category ``laboratory``. Oxygen saturation carries both
59408-5 (pulse oximetry) and 2708-6, as the R4 oxygen-saturation profile asks.

Search (``GET /fhir/Observation``): ``patient`` (id or ``Patient/id``) and ``date`` with the
prefixes ``eq``, ``ge``, ``gt``, ``le``, ``lt`` (FHIR R4 search, section 3.1.1.5.7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from vigie.contract import LOINC, Kind, iso, parse_iso

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PROFILE: Final = "http://hl7.org/fhir/StructureDefinition/"
BP_PANEL: Final = "85354-9"

VITAL: Final[Mapping[Kind, tuple[str, str]]] = {  # kind -> (display, specific profile)
    Kind.WEIGHT: ("Body weight", "bodyweight"),
    Kind.HEART_RATE: ("Heart rate", "heartrate"),
    Kind.SPO2: ("Oxygen saturation in Arterial blood by Pulse oximetry", "oxygensat"),
    Kind.BODY_TEMPERATURE: ("Body temperature", "bodytemp"),
}
LAB: Final[Mapping[Kind, str]] = {
    Kind.GLUCOSE: "Glucose [Mass/volume] in Capillary blood by Glucometer",
    Kind.HBA1C: "Hemoglobin A1c/Hemoglobin.total in Blood",
    Kind.INR: "INR in Blood by Coagulation assay",
    Kind.NT_PROBNP: "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma",
    Kind.CRP: "C reactive protein [Mass/volume] in Serum or Plasma",
    Kind.CREATININE: "Creatinine [Moles/volume] in Serum or Plasma",
}
BP_PARTS: Final[Mapping[Kind, str]] = {
    Kind.BP_SYSTOLIC: "Systolic blood pressure",
    Kind.BP_DIASTOLIC: "Diastolic blood pressure",
    Kind.BP_MEAN: "Mean blood pressure",
}
# UCUM code -> human unit text
UNIT_TEXT: Final = {"mm[Hg]": "mmHg", "/min": "beats/minute", "Cel": "C", "{INR}": "INR"}


class SearchError(ValueError):
    """A search parameter FHIR servers answer with 400 and an OperationOutcome."""


@dataclass(frozen=True, slots=True)
class DateRange:
    start: datetime
    end: datetime


def _bound(text: str) -> tuple[datetime, datetime]:
    """[first instant, instant after) of a FHIR date or dateTime (its precision's range)."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            first = datetime.combine(d, time(), tzinfo=UTC)
            return first, first + timedelta(days=1)
        if len(text) == 7:
            y, m = (int(x) for x in text.split("-"))
            first = datetime(y, m, 1, tzinfo=UTC)
            return first, datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        if len(text) == 4:
            first = datetime(int(text), 1, 1, tzinfo=UTC)
            return first, datetime(int(text) + 1, 1, 1, tzinfo=UTC)
        at = parse_iso(text)
    except ValueError as exc:
        raise SearchError(f"bad date {text!r}: use YYYY-MM-DD or an ISO date-time with a zone"
                          ) from exc
    return at, at + timedelta(microseconds=1)


def date_range(params: Iterable[str], default: DateRange) -> DateRange:
    """Intersect the ``date`` parameters (ANDed, R4 search section 3.1.1.4) into one range."""
    start, end = default.start, default.end
    for raw in params:
        prefix, value = (raw[:2], raw[2:]) if raw[:2].isalpha() else ("eq", raw)
        first, after = _bound(value)
        if prefix == "eq":
            start, end = max(start, first), min(end, after)
        elif prefix in ("ge", "sa"):
            start = max(start, first if prefix == "ge" else after)
        elif prefix == "gt":
            start = max(start, after)
        elif prefix in ("lt", "eb"):
            end = min(end, first)
        elif prefix == "le":
            end = min(end, after)
        else:
            raise SearchError(f"unsupported date prefix {prefix!r}")
    return DateRange(start, end)


def patient_id(param: str) -> str:
    return param.removeprefix("Patient/")


def _coding(code: str, display: str) -> dict[str, str]:
    return {"system": LOINC_SYSTEM, "code": code, "display": display}


def _category(code: str) -> list[dict[str, Any]]:
    text = "Vital Signs" if code == "vital-signs" else "Laboratory"
    return [{"coding": [{"system": CATEGORY_SYSTEM, "code": code, "display": text}],
             "text": text}]


def _quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": UNIT_TEXT.get(ucum, ucum), "system": UCUM, "code": ucum}


def _base(row: Mapping[str, Any], patient: str, rid: str, profiles: list[str],
          category: str, codings: list[dict[str, str]]) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": rid,
        "meta": {"profile": [PROFILE + p for p in profiles]},
        "status": "final", "category": _category(category),
        "code": {"coding": codings, "text": codings[0]["display"]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": row["time"],
    }
    if row.get("device"):
        obs["device"] = {"display": str(row["device"])}
    return obs


def _value(obs: dict[str, Any], row: Mapping[str, Any], ucum: str) -> dict[str, Any]:
    if isinstance(row.get("value"), int | float):
        obs["valueQuantity"] = _quantity(float(row["value"]), ucum)
    else:  # the device sent a special value (NaN, NRes): say why there is none
        obs["dataAbsentReason"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "error", "display": "Error"}]}
    return obs


def _single(row: Mapping[str, Any], patient: str) -> dict[str, Any] | None:
    kind = Kind(row["kind"])
    code = LOINC.get(kind)
    if code is None:
        return None
    ucum = str(row.get("unit") or "")
    if kind in VITAL:
        display, profile = VITAL[kind]
        codings = [_coding(code, display)]
        if kind is Kind.SPO2:
            codings.append(_coding("2708-6", "Oxygen saturation in Arterial blood"))
        obs = _base(row, patient, str(row["id"]), ["vitalsigns", profile], "vital-signs",
                    codings)
    elif kind in LAB:
        obs = _base(row, patient, str(row["id"]), [], "laboratory", [_coding(code, LAB[kind])])
        del obs["meta"]
    else:
        return None
    return _value(obs, row, ucum)


def _blood_pressure(parts: Mapping[Kind, Mapping[str, Any]], patient: str
                    ) -> dict[str, Any]:
    first = parts.get(Kind.BP_SYSTOLIC) or next(iter(parts.values()))
    rid = "bp-" + "-".join(str(parts[k]["id"]) for k in BP_PARTS if k in parts)[:60]
    obs = _base(first, patient, rid, ["vitalsigns", "bp"], "vital-signs",
                [_coding(BP_PANEL, "Blood pressure panel with all children optional")])
    components = []
    for kind, display in BP_PARTS.items():
        if kind in parts:
            comp: dict[str, Any] = {"code": {"coding": [_coding(LOINC[kind], display)]}}
            _value(comp, parts[kind], "mm[Hg]")
            components.append(comp)
    obs["component"] = components
    return obs


def observations(rows: Iterable[Mapping[str, Any]], patient: str) -> list[dict[str, Any]]:
    """Observation resources of a patient's stored readings (``queries.observations`` rows).

    Systolic, diastolic and mean pressures of one device at one instant make one blood
    pressure Observation; kinds with no LOINC code (battery level) are not exported.
    """
    out: list[dict[str, Any]] = []
    pressures: dict[tuple[str, str], dict[Kind, Mapping[str, Any]]] = {}
    for row in rows:
        try:
            kind = Kind(str(row.get("kind")))
        except ValueError:
            continue
        if kind in BP_PARTS:
            key = (str(row["time"]), str(row.get("device")))
            pressures.setdefault(key, {})[kind] = row
            continue
        obs = _single(row, patient)
        if obs is not None:
            out.append(obs)
    out.extend(_blood_pressure(parts, patient) for parts in pressures.values())
    out.sort(key=lambda o: (o["effectiveDateTime"], o["id"]))
    return out


def bundle(resources: list[dict[str, Any]], base_url: str, self_url: str,
           outcomes: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """A searchset Bundle (R4 section 3.1.1.4.1) of ``resources``, and of OperationOutcomes
    about the search itself (entry search mode ``outcome``)."""
    entries = [{"fullUrl": f"{base_url}/Observation/{r['id']}", "resource": r,
                "search": {"mode": "match"}} for r in resources]
    entries += [{"resource": o, "search": {"mode": "outcome"}} for o in outcomes]
    return {
        "resourceType": "Bundle", "type": "searchset", "timestamp": iso(datetime.now(UTC)),
        "total": len(resources), "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }


def outcome(message: str, code: str = "invalid", severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome for an error answer or a warning about a search."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": message}]}
