"""Rule settings: global threshold overrides and per-patient settings, validated on load.

A rules file (TOML or JSON) looks like::

    disabled = ["hf.weight_gain_1d"]           # silence.* rules cannot be disabled

    [thresholds."hf.weight_gain_3d"]            # global override of one rule's defaults
    kg = 2.5

    [default]                                    # settings of patients not listed below
    profile = "heart_failure"

    [patients.p-001]
    profile = ["heart_failure", "diabetes"]
    age = 82
    symptoms = true                              # symptom answers tighten BEAT-HF bounds
    [patients.p-001.thresholds."dm.hypoglycaemia"]
    l2 = 60                                      # physician-set severe hypo threshold

Every override is checked against the rule's parameter model (sane ranges, unknown names
refused), so a typo or an absurd threshold is a load error, never a silently dead rule.

Exceptions (one root per package, grouped by what the caller does next)::

    AlertingError                      root of alerting errors
     ├── SettingsError (ValueError)    fix the rules file or the call
     ├── WarmUpError                   history loader failed: retry the reading later
     └── TransitionError (ValueError)  illegal alert lifecycle transition: fix the call
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class AlertingError(Exception):
    """Root of the errors raised by the alerting package."""


class SettingsError(AlertingError, ValueError):
    """A rules file or an override is invalid (unknown rule, out-of-range threshold...)."""


class WarmUpError(AlertingError):
    """The history loader failed; the reading was not processed and may be redelivered."""


class TransitionError(AlertingError, ValueError):
    """An alert lifecycle operation is not allowed in the alert's current state."""


class Profile(StrEnum):
    HEART_FAILURE = "heart_failure"
    DIABETES = "diabetes"


Overrides = dict[str, dict[str, float]]


class PatientSettings(BaseModel):
    """What the rules need to know about one patient (no name, no identifying data).

    ``profile`` empty means "unknown": every clinical rule whose kind is measured applies.
    ``high_risk`` None means derived from age (>= 65: older adults in the Time in Range
    consensus, Battelino 2019). ``symptoms`` is the latest symptom answer (more
    breathlessness, swelling, dizziness, orthopnoea) that gates the BEAT-HF vital bounds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: tuple[Profile, ...] = ()
    age: int | None = Field(default=None, ge=0, le=130)
    symptoms: bool = False
    resident: bool = False
    high_risk: bool | None = None
    chronic_lung_disease: bool = False
    disabled: tuple[str, ...] = ()
    thresholds: Overrides = Field(default_factory=dict)

    @field_validator("profile", mode="before")
    @classmethod
    def _one_or_many(cls, raw: Any) -> Any:
        return (raw,) if isinstance(raw, str) else raw

    def has(self, profile: Profile) -> bool:
        """True when the profile is declared, or when no profile is declared at all."""
        return not self.profile or profile in self.profile

    @property
    def older_or_high_risk(self) -> bool:
        if self.high_risk is not None:
            return self.high_risk
        return self.age is not None and self.age >= 65


class RulesConfig(BaseModel):
    """Global overrides plus per-patient settings; see the module docstring for the format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: Overrides = Field(default_factory=dict)
    disabled: tuple[str, ...] = ()
    default: PatientSettings = PatientSettings()
    patients: dict[str, PatientSettings] = Field(default_factory=dict)

    def for_patient(self, patient_id: str) -> PatientSettings:
        return self.patients.get(patient_id, self.default)


class RuleSpec(Protocol):
    """What settings validation needs from a rule (implemented by rules.base.Rule)."""

    @property
    def id(self) -> str: ...

    @property
    def can_disable(self) -> bool: ...

    def make_params(self, overrides: Mapping[str, float]) -> BaseModel: ...


def check_config(config: RulesConfig, rules: Mapping[str, RuleSpec]) -> None:
    """Check every rule id, override and disable flag against the catalogue."""
    _check_layer("thresholds", config.thresholds, config.disabled, rules)
    _check_layer("default", config.default.thresholds, config.default.disabled, rules)
    for pid, patient in config.patients.items():
        check_patient(config, pid, patient, rules)


def check_patient(config: RulesConfig, patient_id: str, patient: PatientSettings,
                  rules: Mapping[str, RuleSpec]) -> None:
    """Check one patient's settings against the catalogue and the global layer: the cost of
    one patient, whatever the number of others (a care-team edit, a profile sync)."""
    _check_layer(f"patients.{patient_id}", patient.thresholds, patient.disabled, rules)
    for rule_id, rule in rules.items():  # merged layers must validate together too
        try:
            rule.make_params(merged_overrides(config, patient, rule_id))
        except ValidationError as exc:
            raise SettingsError(f"patients.{patient_id}: {rule_id}: {_brief(exc)}") from exc


def _check_layer(where: str, thresholds: Overrides, disabled: tuple[str, ...],
                 rules: Mapping[str, RuleSpec]) -> None:
    for rule_id in (*thresholds, *disabled):
        if rule_id not in rules:
            raise SettingsError(f"{where}: unknown rule {rule_id!r}")
    for rule_id in disabled:
        if not rules[rule_id].can_disable:
            raise SettingsError(f"{where}: rule {rule_id!r} cannot be disabled (non-"
                                "transmission alerts are mandatory, arrêtés 2023)")
    for rule_id, values in thresholds.items():
        try:
            rules[rule_id].make_params(values)
        except ValidationError as exc:
            raise SettingsError(f"{where}: {rule_id}: {_brief(exc)}") from exc


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def merged_overrides(config: RulesConfig, patient: PatientSettings,
                     rule_id: str) -> dict[str, float]:
    """Global overrides, then the patient's own: the most specific wins."""
    return {**config.thresholds.get(rule_id, {}), **patient.thresholds.get(rule_id, {})}


def is_disabled(config: RulesConfig, patient: PatientSettings, rule_id: str) -> bool:
    return rule_id in config.disabled or rule_id in patient.disabled


def parse_config(raw: Mapping[str, Any]) -> RulesConfig:
    try:
        return RulesConfig.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_brief(exc)) from exc


def load_config(path: Path) -> RulesConfig:
    """Load a TOML (``.toml``) or JSON rules file. Raises SettingsError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read rules file {path}: {exc}") from exc
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"rules file {path} is not valid {path.suffix or 'JSON'}: "
                            f"{exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"rules file {path} must hold an object/table")
    return parse_config(raw)
