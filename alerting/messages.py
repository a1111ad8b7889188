"""Alert texts in every language of the clinicians' pages: one catalogue, keys and arguments.

A rule says what it found as a ``Text``: a message key and its arguments (numbers and
strings, never sentences). The English sentence is rendered once, when the finding is made
(``AlertSignal.message``: notifications, edge alarms, existing API consumers); the key and
arguments travel with the signal, are stored with the alert and rendered in the reader's
language by the API (``render``).

Templates are ``str.format`` templates over the arguments. Both languages of a key use the
same placeholders. Numbers follow the language's decimal mark (``2,3 kg`` in French). Two
format specs go beyond ``format()``:

- ``{n:plural/jour/jours}``: the word for ``n`` (English: singular for exactly 1; French:
  singular below 2, "1,5 jour").
- ``{missed:targets}``: a table argument of rows ``(metric, op, target, value)``, rendered
  row by row with ``dm.time_in_range.missed`` and the metric names of ``TERMS``.

Adding a language: one more entry per key and per term, and the test of the catalogue
(``tests/alerting/test_alert_messages.py``) says what is missing.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

Scalar: TypeAlias = str | int | float
Row: TypeAlias = tuple[Scalar, ...]
Arg: TypeAlias = Scalar | tuple[Row, ...]  # a number, a string, or a table (``targets``)

LANGUAGES: Final = ("en", "fr")
DATE_FORMAT: Final[dict[str, str]] = {"en": "%Y-%m-%d", "fr": "%d/%m/%Y"}  # strftime
DEFAULT_ZONE: Final = "Europe/Paris"  # IANA zone of the times people read (e-mails)
DEFAULT_LANGUAGE: Final = "en"
TARGET_ROW: Final = "dm.time_in_range.missed"

_DAYS_FR: Final = "{days:g} {days:plural/jour/jours}"

# key -> language -> template. English keeps the wording the rules had before the catalogue.
CATALOGUE: Final[dict[str, dict[str, str]]] = {
    # --- diabetes -----------------------------------------------------------------------
    "dm.hypoglycaemia.level1": {
        "en": "level 1 hypoglycaemia {value:.0f} mg/dL (< {threshold:g})",
        "fr": "Hypoglycémie de niveau 1 : {value:.0f} mg/dL (< {threshold:g})",
    },
    "dm.hypoglycaemia.level2": {
        "en": "level 2 hypoglycaemia {value:.0f} mg/dL (< {threshold:g})",
        "fr": "Hypoglycémie de niveau 2 : {value:.0f} mg/dL (< {threshold:g})",
    },
    "dm.hyperglycaemia": {
        "en": "level 2 hyperglycaemia {value:.0f} mg/dL (> {threshold:g})",
        "fr": "Hyperglycémie de niveau 2 : {value:.0f} mg/dL (> {threshold:g})",
    },
    "dm.hyper_sustained": {
        "en": "glucose above {threshold:g} mg/dL for {minutes:g} min",
        "fr": "Glycémie au-dessus de {threshold:g} mg/dL depuis {minutes:g} min",
    },
    "dm.fast_fall": {
        "en": "glucose falling {rate:.1f} mg/dL/min (now {value:.0f} mg/dL)",
        "fr": "Baisse rapide de la glycémie : {rate:.1f} mg/dL/min "
              "(actuellement {value:.0f} mg/dL)",
    },
    "dm.urgent_low_soon": {
        "en": "urgent low soon: forecast {forecast:.0f} mg/dL in {minutes} min "
              "(now {value:.0f})",
        "fr": "Hypoglycémie sévère imminente : {forecast:.0f} mg/dL prévus dans {minutes} min "
              "(actuellement {value:.0f} mg/dL)",
    },
    "dm.time_in_range": {
        "en": "{days:g}-day time in range {in_range:.0f}%, GMI {gmi:.1f}%; "
              "missed: {missed:targets}",
        "fr": "Temps dans la cible sur " + _DAYS_FR + " : {in_range:.0f} %, "
              "GMI {gmi:.1f} % ; objectifs non atteints : {missed:targets}",
    },
    TARGET_ROW: {  # one row of dm.time_in_range's ``missed``; ``metric`` from TERMS
        "en": "{metric} {value:.1f}% (target {op} {target:g}%)",
        "fr": "{metric} {value:.1f} % (objectif {op} {target:g} %)",
    },
    # --- heart failure ------------------------------------------------------------------
    "hf.weight_gain": {
        "en": "weight +{gain:.1f} kg in {days:g} day(s) (threshold {threshold:g} kg)",
        "fr": "Prise de poids de {gain:.1f} kg en " + _DAYS_FR + " (seuil {threshold:g} kg)",
    },
    "hf.weight_baseline": {
        "en": "weight +{gain:.1f} kg above its {days:g}-day mean (threshold {threshold:g} kg)",
        "fr": "Poids supérieur de {gain:.1f} kg à sa moyenne sur " + _DAYS_FR
              + " (seuil {threshold:g} kg)",
    },
    "hf.weight_trend": {
        "en": "weight trend +{delta:.1f} kg: {short_days:g}-day mean vs {long_days:g}-day mean "
              "({z:.1f} x own variability, {confirm} weighings in a row)",
        "fr": "Tendance à la prise de poids : +{delta:.1f} kg, moyenne sur {short_days:g} "
              "{short_days:plural/jour/jours} contre moyenne sur {long_days:g} "
              "{long_days:plural/jour/jours} ({z:.1f} fois la variabilité habituelle, "
              "{confirm} {confirm:plural/pesée consécutive/pesées consécutives})",
    },
    "hf.bp_systolic.above": {
        "en": "bp_systolic {value:g} mmHg above {bound:g}",
        "fr": "Pression artérielle systolique à {value:g} mmHg, au-dessus du seuil de "
              "{bound:g} mmHg",
    },
    "hf.bp_systolic.below": {
        "en": "bp_systolic {value:g} mmHg below {bound:g}",
        "fr": "Pression artérielle systolique à {value:g} mmHg, en dessous du seuil de "
              "{bound:g} mmHg",
    },
    "hf.bp_diastolic.above": {
        "en": "bp_diastolic {value:g} mmHg above {bound:g}",
        "fr": "Pression artérielle diastolique à {value:g} mmHg, au-dessus du seuil de "
              "{bound:g} mmHg",
    },
    "hf.bp_diastolic.below": {
        "en": "bp_diastolic {value:g} mmHg below {bound:g}",
        "fr": "Pression artérielle diastolique à {value:g} mmHg, en dessous du seuil de "
              "{bound:g} mmHg",
    },
    "hf.heart_rate.above": {
        "en": "heart_rate {value:g} /min above {bound:g}",
        "fr": "Fréquence cardiaque à {value:g} /min, au-dessus du seuil de {bound:g} /min",
    },
    "hf.heart_rate.below": {
        "en": "heart_rate {value:g} /min below {bound:g}",
        "fr": "Fréquence cardiaque à {value:g} /min, en dessous du seuil de {bound:g} /min",
    },
    "hf.spo2.below": {
        "en": "spo2 {value:g} % below {bound:g}",
        "fr": "SpO2 à {value:g} %, en dessous du seuil de {bound:g} %",
    },
    "hf.nt_probnp_rise": {
        "en": "NT-proBNP {value:g} pg/mL, +{pct:.0f}% over previous {previous:g}",
        "fr": "NT-proBNP à {value:g} pg/mL, en hausse de {pct:.0f} % par rapport à la valeur "
              "précédente ({previous:g} pg/mL)",
    },
    "nutrition.weight_loss.moderate": {
        "en": "moderate undernutrition criterion: weight loss {loss:.1f}% "
              "({months} {months:plural/month/months}, HAS 2021)",
        "fr": "Critère de dénutrition modérée : perte de poids de {loss:.1f} % en {months} mois "
              "(HAS 2021)",
    },
    "nutrition.weight_loss.severe": {
        "en": "severe undernutrition criterion: weight loss {loss:.1f}% "
              "({months} {months:plural/month/months}, HAS 2021)",
        "fr": "Critère de dénutrition sévère : perte de poids de {loss:.1f} % en {months} mois "
              "(HAS 2021)",
    },
    # --- silence ------------------------------------------------------------------------
    "silence.weight.last": {
        "en": "no weight for {days:g} days (last {silent:.1f} days ago)",
        "fr": "Aucune pesée depuis {silent:.1f} {silent:plural/jour/jours} "
              "(seuil : " + _DAYS_FR + ")",
    },
    "silence.weight.never": {
        "en": "no weight for {days:g} days (no data at all)",
        "fr": "Aucune pesée depuis au moins " + _DAYS_FR + " (jamais reçue)",
    },
    "silence.glucose.last": {
        "en": "no glucose for {days:g} days (last {silent:.1f} days ago)",
        "fr": "Aucune glycémie depuis {silent:.1f} {silent:plural/jour/jours} "
              "(seuil : " + _DAYS_FR + ")",
    },
    "silence.glucose.never": {
        "en": "no glucose for {days:g} days (no data at all)",
        "fr": "Aucune glycémie depuis au moins " + _DAYS_FR + " (jamais reçue)",
    },
    "silence.device": {
        "en": "device {device} silent for {hours:.1f} h",
        "fr": "Aucune donnée de l'appareil {device} depuis {hours:.1f} h",
    },
    "silence.gateway": {
        "en": "{count:plural/gateway/gateways} {gateways} silent for more than {hours:g} h",
        "fr": "Aucun signal {count:plural/de la passerelle/des passerelles} {gateways} "
              "depuis plus de {hours:g} h",
    },
}

# Words a template takes from an argument (``TARGET_ROW``'s metric). English keeps the codes.
TERMS: Final[dict[str, dict[str, str]]] = {
    "below_54": {"en": "below_54", "fr": "temps < 54 mg/dL"},
    "below_70": {"en": "below_70", "fr": "temps < 70 mg/dL"},
    "in_range": {"en": "in_range", "fr": "temps dans la cible 70-180 mg/dL"},
    "above_180": {"en": "above_180", "fr": "temps > 180 mg/dL"},
    "above_250": {"en": "above_250", "fr": "temps > 250 mg/dL"},
    "cv": {"en": "cv", "fr": "coefficient de variation"},
}

# The words of a notification around the alert texts (``alerting.notify.message``): e-mail
# subject and body, the ``title`` of the webhook and nurse console payloads. ``headline`` is
# the text of the most severe alert. ``notify.severity.*`` and ``notify.change.*`` name a
# severity and an alert change; English keeps the codes and the wording notifications had
# before they spoke French. Rendered by ``render_notice``.
NOTICE: Final[dict[str, dict[str, str]]] = {
    "notify.subject": {
        "en": "[Vigie] {severity}{escalated}: patient {patient}, {n} {n:plural/alert/alerts}"
              " - {headline}",
        "fr": "[Vigie] {severity}{escalated} : patient {patient}, "
              "{n} {n:plural/alerte/alertes} - {headline}",
    },
    "notify.subject.escalated": {"en": " ESCALATED", "fr": " (RELANCE)"},
    "notify.patient": {"en": "Patient {patient}", "fr": "Patient {patient}"},
    "notify.patient.site": {"en": "Patient {patient} (site {site})",
                            "fr": "Patient {patient} (site {site})"},
    "notify.alert": {"en": "- [{severity}] {rule} {change}{level}: {text}",
                     "fr": "- [{severity}] {change}{level} : {text} ({rule})"},
    "notify.alert.level": {"en": ", escalation level {level}",
                           "fr": ", niveau d'escalade {level}"},
    "notify.alert.measured": {"en": "  measured {time}{late}, alert #{alert_id}",
                              "fr": "  mesure du {time}{late}, alerte n° {alert_id}"},
    "notify.alert.late": {"en": " (late)", "fr": " (reçue en retard)"},
    # a time in the route's zone: ``date`` as DATE_FORMAT gives it, ``clock`` as HH:MM
    "notify.time": {"en": "{date} {clock} ({zone})", "fr": "{date} à {clock} ({zone})"},
    "notify.footer": {"en": "Message {key}", "fr": "Référence du message : {key}"},
    "notify.severity.urgent": {"en": "urgent", "fr": "urgente"},
    "notify.severity.warning": {"en": "warning", "fr": "avertissement"},
    "notify.severity.info": {"en": "info", "fr": "information"},
    "notify.change.opened": {"en": "opened", "fr": "nouvelle alerte"},
    "notify.change.upgraded": {"en": "upgraded", "fr": "aggravée"},
    "notify.change.reopened": {"en": "reopened", "fr": "rouverte"},
    "notify.change.snooze_expired": {"en": "snooze_expired", "fr": "fin du report"},
    "notify.change.escalated": {"en": "escalated", "fr": "non acquittée, relancée"},
}


# What the system writes in an alert's history (``cloud_api.alerts``). ``{text}`` is the alert's
# own text in the same language (the English message for an alert stored without a key).
HISTORY: Final[dict[str, dict[str, str]]] = {
    "history.raised": {"en": "{text}", "fr": "{text}"},
    "history.cleared": {"en": "{text}", "fr": "{text}"},
    "history.worse": {"en": "worse: {text}", "fr": "aggravation : {text}"},
    "history.snooze_overridden": {"en": "snooze overridden: {text}",
                                  "fr": "report annulé : {text}"},
    "history.snooze_expired": {"en": "snooze expired", "fr": "fin du report"},
    "history.escalated": {"en": "not acknowledged within {minutes:g} min: level {level}",
                          "fr": "non acquittée en {minutes:g} min : niveau {level}"},
}


class MessageError(ValueError):
    """A text the catalogue cannot render: unknown key or language, arguments that do not fit
    the template."""


@dataclass(frozen=True, slots=True)
class Text:
    """A message key and its arguments; hashable (arguments as sorted pairs)."""

    key: str
    args: tuple[tuple[str, Arg], ...] = ()

    @classmethod
    def of(cls, key: str, args: Mapping[str, Arg] | None = None) -> Text:
        return cls(key, tuple(sorted((args or {}).items())))

    @property
    def kwargs(self) -> dict[str, Arg]:
        return dict(self.args)

    def render(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The text in ``lang``; raises MessageError."""
        return render(self.key, self.kwargs, lang)

    def to_json(self) -> dict[str, Any]:
        """``{"key": ..., "args": {...}}`` (tables as lists; non-finite numbers as strings,
        which JSON has no room for)."""
        return {"key": self.key, "args": {k: _json_arg(v) for k, v in self.args}}

    @classmethod
    def from_json(cls, data: object) -> Text | None:
        """The text stored by ``to_json``; None for anything else (never raises)."""
        if not isinstance(data, Mapping):
            return None
        key, args = data.get("key"), data.get("args", {})
        if not isinstance(key, str) or not isinstance(args, Mapping):
            return None
        out: dict[str, Arg] = {}
        for name, value in args.items():
            arg = _arg_from_json(value)
            if not isinstance(name, str) or arg is None:
                return None
            out[name] = arg
        return cls.of(key, out)


def _format(table: Mapping[str, Mapping[str, str]], what: str, key: str,
            args: Mapping[str, Arg], lang: str) -> str:
    templates = table.get(key)
    if templates is None or lang not in templates:
        raise MessageError(f"no {lang!r} {what} for {key!r}")
    try:
        return _Formatter(lang).vformat(templates[lang], (), args)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise MessageError(f"{key!r} in {lang!r} with {dict(args)!r}: {exc!r}") from exc


def render(key: str, args: Mapping[str, Arg], lang: str = DEFAULT_LANGUAGE) -> str:
    """The template of ``key`` in ``lang`` formatted with ``args``; raises MessageError."""
    return _format(CATALOGUE, "text", key, args, lang)


def render_notice(key: str, lang: str = DEFAULT_LANGUAGE, /, **args: Arg) -> str:
    """The ``NOTICE`` template of ``key`` in ``lang`` formatted with ``args``; raises
    MessageError."""
    return _format(NOTICE, "notification text", key, args, lang)


def render_history(key: str, lang: str, text: Text | None, english: str, /,
                   **args: Arg) -> str:
    """The ``HISTORY`` template of ``key`` in ``lang``, ``{text}`` being ``text`` (an alert's)
    in ``lang`` or ``english`` when it has none there; raises MessageError."""
    return _format(HISTORY, "history text", key,
                   {**args, "text": render_or(text, lang, english)}, lang)


def render_or(text: Text | None, lang: str, fallback: str) -> str:
    """``text`` in ``lang``, or ``fallback`` when there is no text or it does not render
    (an alert stored before the catalogue, or by a version with other keys)."""
    if text is None:
        return fallback
    try:
        return text.render(lang)
    except MessageError:
        return fallback


def placeholders(template: str) -> set[str]:
    """The argument names a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.startswith("plural/"):
            one, many = format_spec.split("/")[1:3]
            n = abs(float(value))
            return one if (n < 2 if self.lang == "fr" else n == 1) else many
        if format_spec == "targets":
            return ", ".join(self._target(row) for row in value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return format(value, format_spec)
        out = format(value, format_spec)
        return out.replace(".", ",") if self.lang == "fr" else out

    def _target(self, row: Sequence[Scalar]) -> str:
        metric, op, target, value = row
        term = TERMS.get(str(metric), {}).get(self.lang, str(metric))
        return render(TARGET_ROW, {"metric": term, "op": op, "target": target, "value": value},
                      self.lang)


def _json_arg(value: Arg) -> Any:
    if isinstance(value, tuple):
        return [[_json_arg(x) for x in row] for row in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _scalar(value: object) -> Scalar | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return value


def _arg_from_json(value: object) -> Arg | None:
    if not isinstance(value, list):
        return _scalar(value)
    rows: list[Row] = []
    for row in value:
        if not isinstance(row, list):
            return None
        cells = [_scalar(x) for x in row]
        if any(c is None for c in cells):
            return None
        rows.append(tuple(c for c in cells if c is not None))
    return tuple(rows)
