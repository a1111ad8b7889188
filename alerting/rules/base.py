"""What a rule is: an id, a severity ladder, default thresholds with sane bounds, a source.

Two shapes:

- ``Rule``: evaluated at points in measurement time (each sample of its kind, or each day
  boundary for ``daily`` summaries). ``evaluate`` must be a pure function of the samples at
  or before the point, so a reading arriving late or out of order gives the same results.
- ``SilenceRule``: evaluated on the clock (``Engine.tick``), about data that did not come.
  Silence rules cannot be disabled (arrêtés 2023: non-transmission alerts are mandatory).

Each rule's docstring names the source of its thresholds (shared/reference/alert-rules.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from alerting.messages import DEFAULT_LANGUAGE, Arg, Text, render_or
from alerting.seam import Category, Severity
from alerting.settings import PatientSettings
from alerting.state import HOUR, Finding, PatientState, Sample
from vigie.contract import Kind

RANK: dict[Severity, int] = {Severity.INFO: 0, Severity.WARNING: 1, Severity.URGENT: 2}


class RuleParams(BaseModel):
    """Thresholds of one rule; fields carry their sane bounds (``Field(ge=..., le=...)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=RuleParams)


@dataclass(frozen=True, slots=True)
class RuleContext(Generic[P]):
    """What a rule sees at one evaluation point."""

    state: PatientState
    settings: PatientSettings
    params: P
    at: float  # evaluation time (POSIX seconds): the sample's time or a day boundary
    sample: Sample | None  # the sample evaluated (None for daily summaries)

    @property
    def current(self) -> Sample:
        if self.sample is None:
            raise TypeError("this rule is evaluated on samples, not on day boundaries")
        return self.sample


class BaseRule(ABC, Generic[P]):
    """Identity and parameters shared by sample rules and silence rules."""

    id: ClassVar[str]
    family: ClassVar[str]  # benchmark grouping: hf_weight, hf_vitals, dm_glucose, ...
    category: ClassVar[Category] = Category.CLINICAL
    ladder: ClassVar[tuple[Severity, ...]]
    Params: ClassVar[type[RuleParams]]
    can_disable: ClassVar[bool] = True

    def make_params(self, overrides: Mapping[str, float]) -> P:
        """Defaults updated with overrides, validated (raises pydantic ValidationError)."""
        return cast(P, self.Params.model_validate(dict(overrides)))

    def applies(self, settings: PatientSettings) -> bool:
        return True


class Rule(BaseRule[P]):
    """A rule evaluated at points in measurement time on one kind of sample."""

    kind: ClassVar[Kind]
    daily: ClassVar[bool] = False  # evaluated at each local midnight, not on each sample
    stale_after: ClassVar[float | None] = None  # older samples never fire (level rules)
    late_after: ClassVar[float] = 24 * HOUR  # older: signal marked late, capped at warning

    @abstractmethod
    def lookback(self, params: P) -> float:
        """How far back (seconds) the rule reads; also how far forward a sample matters."""

    @abstractmethod
    def evaluate(self, ctx: RuleContext[P]) -> Finding | None:
        """The finding at ``ctx.at``, or None when the condition does not hold."""

    def cleared(self, ctx: RuleContext[P]) -> bool:
        """Whether a raised condition is over (override to add hysteresis)."""
        return self.evaluate(ctx) is None


class SilenceRule(BaseRule[P]):
    """A rule about missing data, evaluated on the clock; cannot be disabled."""

    category: ClassVar[Category] = Category.ADHERENCE
    can_disable: ClassVar[bool] = False

    @abstractmethod
    def check(self, state: PatientState, settings: PatientSettings, params: P,
              now: float, silent_gateways: frozenset[str]) -> Finding | None:
        """The finding at ``now``, or None when data is flowing."""

    def due(self, state: PatientState, settings: PatientSettings, params: P,
            now: float, silent_gateways: frozenset[str]) -> float | None:
        """The earliest time after ``now`` at which ``check`` may give another severity if
        no reading comes and no gateway changes (the engine handles both), or None. The
        engine's tick visits a patient only then: this is what keeps a tick proportional to
        what is due rather than to the population. The default, None, suits rules that only
        readings or gateways change."""
        return None


def finding(severity: Severity, value: float | None, key: str,
            args: Mapping[str, Arg] | None = None) -> Finding:
    """A finding whose message is ``key`` of ``alerting.messages.CATALOGUE`` with ``args``:
    kept as a ``Text`` for the other languages, rendered in English for ``message``."""
    text = Text.of(key, args)
    message = render_or(text, DEFAULT_LANGUAGE, f"{key} {dict(text.args)}")
    return Finding(severity, None if value is None else round(value, 3), message, text)
