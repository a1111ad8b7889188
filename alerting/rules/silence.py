"""Silence rules: data that did not come. Evaluated on the clock (``Engine.tick``).

Source: French reimbursed telemonitoring (arrêtés 2023, after ETAPES): "non-transmission of
data" alerts are mandatory for heart failure (daily weight) and diabetes, and cannot be
disabled by the operator. Overrides may move N within bounds, never turn a rule off
(``can_disable = False``). Device and gateway silence follow Alertmanager's inhibition: a
silent gateway mutes the silence of the devices behind it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from alerting.rules.base import RuleParams, SilenceRule, finding
from alerting.seam import Category, Severity
from alerting.settings import PatientSettings, Profile
from alerting.state import DAY, HOUR, MINUTE, DeviceInfo, Finding, PatientState
from vigie.contract import Kind


class DaysParams(RuleParams):
    days: float = Field(default=3.0, ge=1.0, le=7.0)


class GlucoseDaysParams(RuleParams):
    days: float = Field(default=3.0, ge=1.0, le=14.0)


class _NoData(SilenceRule[RuleParams]):
    kind: ClassVar[Kind]
    profile: ClassVar[Profile]
    family = "silence"
    ladder = (Severity.WARNING,)

    def check(self, state: PatientState, settings: PatientSettings, params: RuleParams,
              now: float, silent_gateways: frozenset[str]) -> Finding | None:
        last = state.last_time(self.kind)
        if settings.profile and self.profile not in settings.profile:
            return None  # a declared profile that does not include this kind
        if last is None and not settings.profile:
            return None  # no profile and never measured: not this patient's data
        since = last if last is not None else state.since
        days = float(params.model_dump()["days"])
        if now - since < days * DAY:
            return None
        silent = (now - since) / DAY
        variant = "never" if last is None else "last"
        return finding(Severity.WARNING, silent, f"{self.id}.{variant}",
                       {"days": days, "silent": silent})

    def due(self, state: PatientState, settings: PatientSettings, params: RuleParams,
            now: float, silent_gateways: frozenset[str]) -> float | None:
        if settings.profile and self.profile not in settings.profile:
            return None
        last = state.last_time(self.kind)
        if last is None and not settings.profile:
            return None
        at = (last if last is not None else state.since) + float(params.model_dump()["days"]) * DAY
        return at if now < at < float("inf") else None


class NoWeight(_NoData):
    """No weight for 3 days (bounds 1-7). Heart failure: daily weight is mandatory."""

    id = "silence.weight"
    kind = Kind.WEIGHT
    profile = Profile.HEART_FAILURE
    Params = DaysParams


class NoGlucose(_NoData):
    """No glucose for 3 days (bounds 1-14; the arrêtés require at least weekly
    transmission, Vigie warns earlier)."""

    id = "silence.glucose"
    kind = Kind.GLUCOSE
    profile = Profile.DIABETES
    Params = GlucoseDaysParams


class DeviceParams(RuleParams):
    cgm_minutes: float = Field(default=30.0, ge=15.0, le=360.0)
    other_days: float = Field(default=7.0, ge=1.0, le=30.0)


class DeviceSilent(SilenceRule[DeviceParams]):
    """A device silent: a CGM stream (median interval <= 15 min) for 30 minutes (Nightscout
    urgent stale-data alarm at 30 min), warning; any other device for 7 days, info.
    Muted while the device's gateway is silent (inhibition)."""

    id = "silence.device"
    family = "silence"
    category = Category.TECHNICAL
    ladder = (Severity.INFO, Severity.WARNING)
    Params = DeviceParams

    def check(self, state: PatientState, settings: PatientSettings, params: DeviceParams,
              now: float, silent_gateways: frozenset[str]) -> Finding | None:
        worst: tuple[Severity, float, str] | None = None
        for device_id, info in sorted(state.devices.items()):
            if info.gateway_id in silent_gateways:
                continue
            limit, cgm = self._limit(info, params)
            quiet = now - info.last_received
            if quiet >= limit:
                sev = Severity.WARNING if cgm else Severity.INFO
                if worst is None or (sev, quiet) > (worst[0], worst[1]):
                    worst = (sev, quiet, device_id)
        if worst is None:
            return None
        sev, quiet, device_id = worst
        return finding(sev, quiet / HOUR, "silence.device",
                       {"device": device_id, "hours": quiet / HOUR})

    def due(self, state: PatientState, settings: PatientSettings, params: DeviceParams,
            now: float, silent_gateways: frozenset[str]) -> float | None:
        # a device crossing its limit can only raise the worst severity: the next crossing
        nxt = None
        for info in state.devices.values():
            if info.gateway_id not in silent_gateways:
                at = info.last_received + self._limit(info, params)[0]
                if at > now and (nxt is None or at < nxt):
                    nxt = at
        return nxt

    @staticmethod
    def _limit(info: DeviceInfo, params: DeviceParams) -> tuple[float, bool]:
        """Seconds of quiet after which the device is silent, and whether it is a CGM
        stream (median interval of 15 minutes or less)."""
        cadence = info.median_interval()
        cgm = cadence is not None and cadence <= 15 * MINUTE
        return (params.cgm_minutes * MINUTE if cgm else params.other_days * DAY), cgm


class GatewayParams(RuleParams):
    hours: float = Field(default=6.0, ge=0.25, le=72.0)


class GatewaySilent(SilenceRule[GatewayParams]):
    """The patient's gateway sent neither a heartbeat nor a reading for 6 hours (bounds
    15 min - 3 days). Only for gateways that have sent a heartbeat once (``Engine.heartbeat``),
    so a gateway known only through sparse readings is not called silent."""

    id = "silence.gateway"
    family = "silence"
    category = Category.TECHNICAL
    ladder = (Severity.WARNING,)
    Params = GatewayParams

    def check(self, state: PatientState, settings: PatientSettings, params: GatewayParams,
              now: float, silent_gateways: frozenset[str]) -> Finding | None:
        mine = sorted({d.gateway_id for d in state.devices.values()} & silent_gateways)
        if not mine:
            return None
        return finding(Severity.WARNING, None, "silence.gateway",
                       {"gateways": ", ".join(mine), "count": len(mine), "hours": params.hours})
