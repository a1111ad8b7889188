"""Routing: who gets which notification, through which channel. A TOML (or JSON) file::

    [grouping]
    window_s = 30              # a patient's changes within this window make one message

    [retry]
    min_s = 1                  # capped exponential backoff with full jitter between attempts
    max_s = 300

    [escalation]               # minutes an alert may stay unacknowledged, per severity
    urgent = 15                #   (0: never escalates); then one level more each time
    warning = 240
    info = 0
    max_level = 3

    [smtp]
    host = "smtp.example.org"
    port = 587
    sender = "vigie@example.org"
    starttls = true
    username = "vigie"
    password_file = "smtp-password"   # relative to this file

    [mqtt]                     # the broker the on-site nurse consoles listen to
    host = "127.0.0.1"
    port = 1883

    [[routes]]
    site = "ehpad-1"           # "*": any site, and patients of no known site
    channel = "webhook"        # webhook | email | nurse_console
    url = "https://nurses.example.org/vigie"
    secret_file = "ehpad-1.secret"
    severities = ["urgent", "warning"]   # default: every severity

    [[routes]]
    site = "ehpad-1"
    channel = "email"
    to = ["cadre@ehpad-1.example.org"]
    severities = ["urgent"]
    min_level = 1              # only once escalated (a second person, issue 5)
    language = "fr"            # en (default) | fr: subject, body, webhook/console ``text``
    zone = "Europe/Paris"      # default; times in the e-mail body (webhooks keep ISO UTC)

    [[routes]]
    site = "ehpad-1"
    channel = "nurse_console"  # topic vigie/v1/sites/ehpad-1/nurse-console, QoS 1
    language = "fr"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alerting.messages import DEFAULT_LANGUAGE, DEFAULT_ZONE, LANGUAGES
from alerting.notify.errors import RoutingError
from alerting.seam import Severity

Channel = Literal["webhook", "email", "nurse_console"]
CHANGES = ("opened", "upgraded", "reopened", "snooze_expired", "escalated")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grouping(_Model):
    window_s: float = Field(default=30.0, ge=0.0, le=3600.0)


class Retry(_Model):
    min_s: float = Field(default=1.0, gt=0.0, le=600.0)
    max_s: float = Field(default=300.0, gt=0.0, le=86400.0)
    lease_s: float = Field(default=120.0, ge=5.0, le=3600.0)  # a claimed message's send time
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)  # per channel call


class EscalationSettings(_Model):
    urgent: float = Field(default=15.0, ge=0.0, le=10080.0)
    warning: float = Field(default=240.0, ge=0.0, le=10080.0)
    info: float = Field(default=0.0, ge=0.0, le=10080.0)
    max_level: int = Field(default=3, ge=0, le=10)

    def after(self) -> dict[str, timedelta | None]:
        """Per severity, the wait before escalation (None: never)."""
        minutes = {"urgent": self.urgent, "warning": self.warning, "info": self.info}
        return {k: timedelta(minutes=v) if v > 0 else None for k, v in minutes.items()}


class SmtpSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "vigie@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None


class MqttSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = "vigie-notify-1"
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


class Route(_Model):
    site: str = "*"
    channel: Channel
    name: str = ""  # unique; default "<index>:<channel>:<site>"
    severities: tuple[Severity, ...] = tuple(Severity)
    min_level: int = Field(default=0, ge=0, le=10)
    changes: tuple[str, ...] = CHANGES
    url: str | None = None
    secret: str | None = Field(default=None, repr=False)
    to: tuple[str, ...] = ()
    language: str = DEFAULT_LANGUAGE  # of the messages this route sends (alerting.messages)
    zone: str = DEFAULT_ZONE  # IANA zone of the times in its e-mails

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"unknown language {value!r} (known: {', '.join(LANGUAGES)})")
        return value

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             f"Europe/Paris or Indian/Reunion)") from exc
        return value

    @model_validator(mode="after")
    def _complete(self) -> Route:
        if self.channel == "webhook":
            if not (self.url and self.secret):
                raise ValueError("a webhook route needs url and secret (or secret_file)")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"webhook url must be http(s): {self.url!r}")
        if self.channel == "email" and not (self.to and all("@" in a for a in self.to)):
            raise ValueError("an email route needs 'to' addresses")
        unknown = set(self.changes) - set(CHANGES)
        if unknown:
            raise ValueError(f"unknown changes {sorted(unknown)} (known: {CHANGES})")
        return self

    def wants(self, site: str | None, severity: str, level: int, change: str) -> bool:
        return ((self.site == "*" or self.site == site) and severity in self.severities
                and level >= self.min_level and change in self.changes)


class RoutingConfig(_Model):
    grouping: Grouping = Grouping()
    retry: Retry = Retry()
    escalation: EscalationSettings = EscalationSettings()
    smtp: SmtpSettings | None = None
    mqtt: MqttSettings | None = None
    routes: tuple[Route, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _name_routes(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("routes"), list):
            raw = {**raw, "routes": [
                {**r, "name": r.get("name") or f"{i}:{r.get('channel')}:{r.get('site', '*')}"}
                if isinstance(r, dict) else r for i, r in enumerate(raw["routes"])]}
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfig:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique: {names}")
        channels = {r.channel for r in self.routes}
        if "email" in channels and self.smtp is None:
            raise ValueError("email routes need an [smtp] table")
        if "nurse_console" in channels and self.mqtt is None:
            raise ValueError("nurse_console routes need an [mqtt] table")
        return self

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


def _read_secrets(raw: dict[str, Any], base: Path) -> None:
    """``secret_file``/``password_file`` (relative to the routing file) become values."""
    for table in [*raw.get("routes", []), raw.get("smtp") or {}]:
        for key, field in (("secret_file", "secret"), ("password_file", "password")):
            if key in table:
                path = base / str(table.pop(key))
                try:
                    table[field] = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise RoutingError(f"cannot read {key} {path}: {exc}") from exc


def parse_routing(raw: Mapping[str, Any], base: Path | None = None) -> RoutingConfig:
    data = json.loads(json.dumps(raw))  # a deep copy we may edit
    _read_secrets(data, base or Path("."))
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RoutingError(where) from exc


def load_routing(path: Path) -> RoutingConfig:
    """Load a TOML (``.toml``) or JSON routing file. Raises RoutingError."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RoutingError(f"routing file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise RoutingError(f"routing file {path} must hold an object/table")
    return parse_routing(raw, path.parent)
