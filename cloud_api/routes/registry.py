"""Care sites, patients, gateways and devices: what a care team registers without an engineer.

Staff of a site add residents (pseudonymous id, clinical profile, age group), gateways and
devices, pair devices to gateways and assign them to a patient or mark them shared. Rule
settings (thresholds, disabled rules) are a physician's or an admin's call; they are stored
as ``alerting.settings.PatientSettings`` JSON and checked against the rule catalogue first.
Everything of another site answers 404 as if absent; every patient read or change is audited.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.rules import BaseRule, default_rules
from alerting.settings import (
    PatientSettings,
    Profile,
    RulesConfig,
    SettingsError,
    check_config,
)
from cloud_api import audit, gateway_config
from cloud_api.alerts import LIVE_STATES
from cloud_api.db import (
    Alert,
    CareSite,
    Device,
    Gateway,
    Patient,
    PatientProfile,
    PendingGateway,
    Stream,
)
from cloud_api.routes.deps import (
    AUTH_ERRORS,
    BODY_ERRORS,
    ID_PATTERN,
    Ctx,
    GlobalAdmin,
    Staff,
    audited,
    not_found,
)
from cloud_api.security import Principal, Role
from cloud_api.tenancy import site_clause
from vigie.contract import iso, now_utc

router = APIRouter(tags=["registry"], responses=AUTH_ERRORS)
PatientId = Annotated[str, Path(pattern=ID_PATTERN)]
GatewayId = Annotated[str, Path(pattern=ID_PATTERN)]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN)]
NOT_HERE: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such resource at the caller's sites"}}
SEVERITY_RANK = {"info": 0, "warning": 1, "urgent": 2}


class AgeGroup(StrEnum):
    """Age bands instead of a birth date (pseudonymous records); bounds match the rules'
    age thresholds (65: older adults in Battelino 2019; 70: HAS undernutrition)."""

    ADULT = "18-64"
    SIXTY_FIVE = "65-69"
    SEVENTY = "70-79"
    EIGHTY = "80-89"
    NINETY = "90+"


AGE_OF_GROUP = {AgeGroup.ADULT: 18, AgeGroup.SIXTY_FIVE: 65, AgeGroup.SEVENTY: 70,
                AgeGroup.EIGHTY: 80, AgeGroup.NINETY: 90}


class SiteOut(BaseModel):
    id: str
    name: str


def _integral(value: Any) -> Any:
    """JSON Schema's integer admits 66.0 (a number with no fraction): take it as 66. A
    boolean or a fraction goes on to the strict check, which refuses it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _optional_params(rule: BaseRule[Any]) -> type[BaseModel]:
    """A rule's parameter model with every field optional (an override of some of them)."""
    fields: dict[str, Any] = {
        name: (Annotated[info.annotation, *info.metadata,
                         *([BeforeValidator(_integral)] if info.annotation is int else [])]
               | None, Field(default=None, description=info.description))
        for name, info in rule.Params.model_fields.items()}
    return create_model(f"{rule.Params.__name__}Override", __config__=_FORBID, **fields)


_FORBID = ConfigDict(extra="forbid", strict=True)  # JSON false is no threshold
_RULES = default_rules()
# One optional member per rule id; ids have dots, so the member is named by an alias.
ThresholdsIn: type[BaseModel] = create_model(
    "ThresholdsIn", __config__=ConfigDict(extra="forbid", populate_by_name=True, strict=True),
    **cast(dict[str, Any], {r.id.replace(".", "__"): (_optional_params(r) | None,
                                                      Field(default=None, alias=r.id))
                            for r in _RULES}))
DisableableRule = Literal[tuple(r.id for r in _RULES if r.can_disable)]  # type: ignore[valid-type]


class RuleSettingsIn(BaseModel):
    """Per-patient rule settings (``alerting.settings.PatientSettings`` less the profile and
    age, which come from the patient's profile and age group)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    symptoms: bool = False
    resident: bool = False
    high_risk: bool | None = None
    chronic_lung_disease: bool = False
    disabled: list[DisableableRule] = Field(  # type: ignore[valid-type]
        default=[], max_length=len(_RULES))
    thresholds: ThresholdsIn | None = None  # type: ignore[valid-type]


class ProfileIn(BaseModel):
    profile: list[Profile] = Field(default=[], max_length=2,
                                   description="heart_failure and/or diabetes")
    age_group: AgeGroup | None = None
    settings: RuleSettingsIn = Field(default_factory=RuleSettingsIn)


class PatientIn(ProfileIn):
    id: str = Field(pattern=ID_PATTERN, description="pseudonymous id, never a name")
    site: str = Field(pattern=ID_PATTERN)


class PatientOut(BaseModel):
    id: str
    site: str | None
    profile: list[str]
    age_group: str | None
    settings: dict[str, Any]
    first_seen: str
    live_alerts: int
    worst_severity: str | None


class GatewayIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    site: str = Field(pattern=ID_PATTERN)


class DeviceIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    site: str = Field(pattern=ID_PATTERN)
    family: str | None = Field(default=None, max_length=64)
    gateway: str | None = Field(default=None, pattern=ID_PATTERN)
    patient: str | None = Field(default=None, pattern=ID_PATTERN)
    shared: bool = False


class DeviceChange(BaseModel):
    gateway: str | None = Field(default=None, pattern=ID_PATTERN,
                                description="pair to this gateway (null: unpair)")
    patient: str | None = Field(default=None, pattern=ID_PATTERN,
                                description="assign to this patient (null: nobody's)")
    shared: bool = Field(default=False, description="a shared device (ward scale, analyzer)")


class DeviceOut(BaseModel):
    id: str
    site: str
    family: str | None
    gateway: str | None
    patient: str | None
    shared: bool
    last_seen: str | None
    updated_by: str


class GatewayOut(BaseModel):
    id: str
    site: str | None
    status: str
    online: bool
    status_at: str | None
    last_seen: str | None
    outbox_depth: int | None
    devices: list[DeviceOut]


# --- care sites -------------------------------------------------------------------------

@router.get("/sites")
def list_sites(ctx: Ctx, who: Staff) -> list[SiteOut]:
    """The care sites the caller works at."""
    q = select(CareSite).where(site_clause(who.sites, CareSite.id)).order_by(CareSite.id)
    with ctx.sessions() as session:
        return [SiteOut(id=s.id, name=s.name) for s in session.scalars(q)]


# --- patients ---------------------------------------------------------------------------

def _settings(body: ProfileIn) -> PatientSettings:
    """The body's settings as rule settings, checked against the rule catalogue."""
    raw = body.settings.model_dump(by_alias=True, exclude_none=True)
    raw["thresholds"] = {rule: {k: v for k, v in values.items() if v is not None}
                         for rule, values in (raw.get("thresholds") or {}).items()}
    raw["profile"] = [str(p) for p in body.profile]
    if body.age_group is not None:
        raw["age"] = AGE_OF_GROUP[body.age_group]
    try:
        settings = PatientSettings.model_validate(raw)
        check_config(RulesConfig(patients={"p": settings}), {r.id: r for r in _RULES})
    except (ValidationError, SettingsError) as exc:
        raise RequestValidationError([{"loc": ("body", "settings"), "msg": str(exc),
                                       "type": "value_error"}]) from exc
    return settings


def _require_rule_author(who: Principal, settings: PatientSettings,
                         before: dict[str, Any] | None) -> None:
    old = before or {}
    changed = (settings.thresholds != old.get("thresholds", {})
               or list(settings.disabled) != list(old.get("disabled", [])))
    if changed and who.role is Role.NURSE:
        raise HTTPException(403, "thresholds and disabled rules are set by a physician")


def _patient_out(session: Session, p: Patient, prof: PatientProfile | None) -> PatientOut:
    sev = list(session.scalars(select(Alert.severity).where(
        Alert.patient_id == p.id, Alert.state.in_(LIVE_STATES))))
    settings = prof.settings if prof else {}
    return PatientOut(id=p.id, site=p.site_id, profile=list(settings.get("profile", [])),
                      age_group=prof.age_group if prof else None, settings=settings,
                      first_seen=iso(p.first_seen), live_alerts=len(sev),
                      worst_severity=max(sev, key=lambda s: SEVERITY_RANK.get(s, 0))
                      if sev else None)


def visible_patient(session: Session, who: Principal, patient: str, note: audit.Note
                    ) -> Patient:
    """The patient row, or 404 when absent or of another site (the same answer)."""
    row = session.get(Patient, patient)
    note.site = row.site_id if row else None
    if row is None or not who.sees(row.site_id):
        raise not_found(f"patient {patient}")
    return row


@router.get("/patients")
def list_patients(ctx: Ctx, who: Staff) -> list[PatientOut]:
    """Patients of the caller's sites with their profile and live alert count."""
    q = select(Patient).where(site_clause(who.sites, Patient.site_id)).order_by(Patient.id)
    note = audit.Note(who.username, "patients.list", "/patients")
    with audited(ctx, note) as session:
        out = [_patient_out(session, p, session.get(PatientProfile, p.id))
               for p in session.scalars(q)]
        note.patients(p.id for p in out)
        return out


@router.post("/patients", status_code=201,
             responses={**BODY_ERRORS, 403: {"description": "outside the caller's sites"},
                        409: {"description": "patient id taken"}})
def add_patient(ctx: Ctx, who: Staff, body: PatientIn) -> PatientOut:
    """Register a resident or a patient at home (pseudonymous id, profile, age group)."""
    note = audit.Note(who.username, "patient.create", "/patients", patient=body.id,
                      site=body.site)
    settings = _settings(body)
    with audited(ctx, note) as session:
        if not who.sees(body.site) or session.get(CareSite, body.site) is None:
            raise HTTPException(403, "not a site of yours")
        _require_rule_author(who, settings, None)
        if session.get(Patient, body.id) is not None:
            raise HTTPException(409, "this patient id is already registered")
        patient = Patient(id=body.id, site_id=body.site, first_seen=now_utc())
        session.add(patient)
        session.flush()
        prof = _store_profile(session, who, body.id, body.age_group, settings)
        return _patient_out(session, patient, prof)


def _store_profile(session: Session, who: Principal, patient: str, age_group: AgeGroup | None,
                   settings: PatientSettings) -> PatientProfile:
    prof = session.get(PatientProfile, patient) or PatientProfile(patient_id=patient)
    prof.age_group = str(age_group) if age_group else None
    prof.settings = settings.model_dump(mode="json", exclude_defaults=True)
    prof.settings["profile"] = [str(p) for p in settings.profile]
    prof.updated_at, prof.updated_by = now_utc(), who.username
    session.add(prof)
    session.flush()
    return prof


@router.get("/patients/{patient}", responses=NOT_HERE)
def get_patient(ctx: Ctx, who: Staff, patient: PatientId) -> PatientOut:
    """A patient's profile and rule settings."""
    note = audit.Note(who.username, "patient.read", f"/patients/{patient}", patient=patient)
    with audited(ctx, note) as session:
        row = visible_patient(session, who, patient, note)
        return _patient_out(session, row, session.get(PatientProfile, patient))


@router.put("/patients/{patient}",
            responses={**NOT_HERE, **BODY_ERRORS,
                       403: {"description": "rule thresholds need a physician"}})
def set_profile(ctx: Ctx, who: Staff, patient: PatientId, body: ProfileIn) -> PatientOut:
    """Replace a patient's profile, age group and rule settings."""
    note = audit.Note(who.username, "patient.update", f"/patients/{patient}", patient=patient)
    settings = _settings(body)
    with audited(ctx, note) as session:
        row = visible_patient(session, who, patient, note)
        before = session.get(PatientProfile, patient)
        _require_rule_author(who, settings, before.settings if before else None)
        note.detail["fields"] = sorted(body.model_fields_set)
        prof = _store_profile(session, who, patient, body.age_group, settings)
        return _patient_out(session, row, prof)


# --- gateways and devices ---------------------------------------------------------------

def _visible_gateway(session: Session, who: Principal, gateway_id: str) -> Gateway:
    gw = session.get(Gateway, gateway_id)
    if gw is None or not who.sees(gw.site):
        raise not_found(f"gateway {gateway_id}")
    return gw


def _device_out(session: Session, d: Device) -> DeviceOut:
    seen = session.scalar(select(func.max(Stream.last_seen)).where(Stream.device_id == d.id))
    return DeviceOut(id=d.id, site=d.site_id, family=d.family, gateway=d.gateway_id,
                     patient=d.patient_id, shared=d.shared,
                     last_seen=iso(seen) if seen else None, updated_by=d.updated_by)


@router.post("/gateways", status_code=201,
             responses={**BODY_ERRORS, 403: {"description": "outside the caller's sites"},
                        409: {"description": "gateway id taken"}})
def add_gateway(ctx: Ctx, who: Staff, body: GatewayIn) -> GatewayOut:
    """Register a gateway at a site, before it first connects or from the pending list:
    until then its readings are quarantined."""
    note = audit.Note(who.username, "gateway.create", f"/gateways/{body.id}", site=body.site)
    with audited(ctx, note) as session:
        if not who.sees(body.site) or session.get(CareSite, body.site) is None:
            raise HTTPException(403, "not a site of yours")
        gw = session.get(Gateway, body.id)
        if gw is not None and gw.site is not None:
            raise HTTPException(409, "this gateway id is already registered")
        if gw is None:  # (a row of no site: seen before registration was required)
            gw = Gateway(id=body.id, status="unknown")
            session.add(gw)
        gw.site = body.site
        pending = session.get(PendingGateway, body.id)
        if pending is not None:  # its earlier readings stay in quarantine, with their reason
            note.detail["pending_messages"] = pending.messages
            session.delete(pending)
        session.flush()
        return _gateway_out(session, gw)


def _gateway_out(session: Session, gw: Gateway) -> GatewayOut:
    devices = session.scalars(select(Device).where(Device.gateway_id == gw.id)
                              .order_by(Device.id))
    return GatewayOut(id=gw.id, site=gw.site, status=gw.status, online=gw.status == "online",
                      status_at=iso(gw.status_at) if gw.status_at else None,
                      last_seen=iso(gw.last_seen) if gw.last_seen else None,
                      outbox_depth=gw.outbox_depth,
                      devices=[_device_out(session, d) for d in devices])


class PendingGatewayOut(BaseModel):
    id: str
    first_seen: str
    last_seen: str
    messages: int
    claimed_site: str | None


@router.get("/gateways/pending", responses=AUTH_ERRORS)
def pending_gateways(ctx: Ctx, who: GlobalAdmin) -> list[PendingGatewayOut]:
    """Gateways that sent messages without being registered to a site, newest first: their
    readings are in quarantine until someone registers them (``POST /gateways``). What
    their payload claimed as a site is shown, never believed (global admins: these
    gateways belong to no site yet)."""
    registered = select(Gateway.id).where(Gateway.site.is_not(None))
    q = (select(PendingGateway).where(PendingGateway.id.not_in(registered))
         .order_by(PendingGateway.last_seen.desc()).limit(1000))
    with ctx.sessions() as session:
        return [PendingGatewayOut(id=p.id, first_seen=iso(p.first_seen),
                                  last_seen=iso(p.last_seen), messages=p.messages,
                                  claimed_site=p.claimed_site) for p in session.scalars(q)]


@router.get("/gateways/{gateway_id}", responses=NOT_HERE)
def get_gateway(ctx: Ctx, who: Staff, gateway_id: GatewayId) -> GatewayOut:
    """A gateway: online or offline, last seen, outbox depth, its paired devices."""
    with ctx.sessions() as session:
        return _gateway_out(session, _visible_gateway(session, who, gateway_id))


@router.get("/devices")
def list_devices(ctx: Ctx, who: Staff) -> list[DeviceOut]:
    """Devices of the caller's sites."""
    q = select(Device).where(site_clause(who.sites, Device.site_id)).order_by(Device.id)
    note = audit.Note(who.username, "devices.list", "/devices")
    with audited(ctx, note) as session:
        out = [_device_out(session, d) for d in session.scalars(q)]
        note.patients(d.patient for d in out if d.patient)
        return out


def _check_links(session: Session, who: Principal, site: str, gateway: str | None,
                 patient: str | None, shared: bool) -> None:
    if patient is not None and shared:
        raise HTTPException(409, "a device is either a patient's or shared, not both")
    if gateway is not None:
        gw = _visible_gateway(session, who, gateway)
        if gw.site != site:
            raise not_found(f"gateway {gateway}")
    if patient is not None:
        row = session.get(Patient, patient)
        if row is None or row.site_id != site or not who.sees(row.site_id):
            raise not_found(f"patient {patient}")


@router.post("/devices", status_code=201,
             responses={**BODY_ERRORS, **NOT_HERE,
                        403: {"description": "outside the caller's sites"},
                        409: {"description": "device id taken, or both a patient's and shared"}})
def add_device(ctx: Ctx, who: Staff, body: DeviceIn) -> DeviceOut:
    """Register a device, optionally paired to a gateway and assigned or shared."""
    note = audit.Note(who.username, "device.create", f"/devices/{body.id}",
                      patient=body.patient, site=body.site)
    with audited(ctx, note) as session:
        if not who.sees(body.site) or session.get(CareSite, body.site) is None:
            raise HTTPException(403, "not a site of yours")
        _check_links(session, who, body.site, body.gateway, body.patient, body.shared)
        if session.get(Device, body.id) is not None:
            raise HTTPException(409, "this device id is already registered")
        device = Device(id=body.id, site_id=body.site, family=body.family,
                        gateway_id=body.gateway, patient_id=body.patient, shared=body.shared,
                        updated_at=now_utc(), updated_by=who.username)
        session.add(device)
        session.flush()
        gateway_config.bump(session, [device.gateway_id])  # pushed to the gateway
        return _device_out(session, device)


@router.put("/devices/{device_id}", responses={
    **BODY_ERRORS, **NOT_HERE, 409: {"description": "both a patient's and shared"}})
def change_device(ctx: Ctx, who: Staff, device_id: DeviceId, body: DeviceChange) -> DeviceOut:
    """Pair a device to a gateway, assign it to a patient, or mark it shared."""
    note = audit.Note(who.username, "device.update", f"/devices/{device_id}",
                      patient=body.patient)
    with audited(ctx, note) as session:
        device = session.get(Device, device_id)
        if device is None or not who.sees(device.site_id):
            raise not_found(f"device {device_id}")
        note.site = device.site_id
        note.detail["previous_patient"] = device.patient_id
        _check_links(session, who, device.site_id, body.gateway, body.patient, body.shared)
        gateway_config.bump(session, [device.gateway_id, body.gateway])  # old and new
        device.gateway_id, device.patient_id = body.gateway, body.patient
        device.shared, device.updated_at, device.updated_by = body.shared, now_utc(), who.username
        return _device_out(session, device)
