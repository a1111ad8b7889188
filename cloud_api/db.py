"""Relational state of the cloud side (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

The same code runs on both: no dialect-specific statement outside ``make_engine`` and
``cloud_api.migrations``. The schema is made and changed by migrations only
(``cloud_api/migrations/versions``): a change to a model here needs a revision there.

Time series live in InfluxDB; this holds what has identity and a lifecycle: gateways and
their status, device streams and their gaps, quarantined payloads, alerts and their history,
and the security state: care sites, users (and refresh tokens), patients (pseudonymous id
and site), audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker, validates
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite forgets the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outbox_depth: Mapped[int | None] = mapped_column(Integer)


class PendingGateway(Base):
    """A gateway identity that sent messages without being registered to a site (its
    readings are quarantined): one row per identity, for an admin to register or refuse
    (a table of its own: ``create_all`` adds tables, never columns)."""

    __tablename__ = "pending_gateways"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    claimed_site: Mapped[str | None] = mapped_column(String(128))  # what its payload said


class Stream(Base):
    """Per (gateway, device) stream: highest sequence number seen."""

    __tablename__ = "streams"
    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    high_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Gap(Base):
    """Sequence numbers of a device stream that have not arrived (yet)."""

    __tablename__ = "gaps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(128), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)


def storable(value: str | None, limit: int | None) -> str | None:
    """Untrusted text as every backend stores it: PostgreSQL's text holds no NUL character
    (SQLite's does), and its VARCHAR(n) refuses a longer value (SQLite's keeps it)."""
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")
    return value if limit is None else value[:limit]


class Quarantine(Base):
    """What was refused, kept as sent (within the column sizes): anything an attacker
    chose, hence ``storable``."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    topic: Mapped[str] = mapped_column(String(512))
    gateway_id: Mapped[str | None] = mapped_column(String(128))
    reading_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # the offending reading or message (truncated)

    @validates("topic", "gateway_id", "reading_id", "reason", "payload")
    def _storable(self, key: str, value: str | None) -> str | None:
        return storable(value, getattr(self.__table__.c[key].type, "length", None))


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)  # measurement time that raised it
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)  # wall time it was raised
    value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    reading_id: Mapped[str | None] = mapped_column(String(64))
    late: Mapped[bool] = mapped_column(default=False)
    count: Mapped[int] = mapped_column(Integer, default=1)
    # {"text": {"key": ..., "args": {...}}}: ``message`` as an ``alerting.messages`` key and
    # arguments, rendered per language by the API (a column every database already has:
    # ``create_all`` adds tables, never columns); None for alerts stored before it.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AlertEvent(Base):
    """Every transition of an alert, with who and when."""

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("alert_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    who: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)


class AlertEventText(Base):
    """What the system wrote in an alert's history, in every language of the catalogue
    (``alerting.messages.HISTORY``), rendered when written; ``AlertEvent.comment`` keeps the
    English. A table of its own (``create_all`` adds tables, never columns); events written by
    a clinician, or before this table, have no row."""

    __tablename__ = "alert_event_texts"
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    messages: Mapped[dict[str, str]] = mapped_column(JSON)


class AlertTimer(Base):
    """Lifecycle of an alert beyond its state (cloud_api.alerts; a table of its own:
    ``create_all`` adds tables to an existing database, never columns): wall time of the last
    transition (escalation counts from it), escalation level, end of a snooze, and the id of
    the gateway's local alarm that already paged the site's nurses for this event (then the
    cloud does not page again). Alerts opened before this table existed have no row."""

    __tablename__ = "alert_timers"
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    state_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    on_site_alarm: Mapped[str | None] = mapped_column(String(64))


class NotifyEvent(Base):
    """An alert change waiting to be grouped into a notification (cloud_api.notifications).

    Written in the transaction of the alert change itself, so no alert opens or escalates
    without its notification; turned into ``NotifyDelivery`` rows once the patient's grouping
    window has passed."""

    __tablename__ = "notify_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    site_id: Mapped[str | None] = mapped_column(String(128))
    change: Mapped[str] = mapped_column(String(32))  # opened, escalated, reopened, ...
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class NotifyDelivery(Base):
    """One grouped message for one channel target; deleted only once the channel confirmed
    it (HTTP 2xx, SMTP 250, MQTT PUBACK)."""

    __tablename__ = "notify_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # idempotency key for receivers
    channel: Mapped[str] = mapped_column(String(32))
    route: Mapped[str] = mapped_column(String(256))
    site_id: Mapped[str | None] = mapped_column(String(128))
    patient_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class EdgeAlarm(Base):
    """An urgent alarm a gateway raised and paged on site while the cloud was unreachable."""

    __tablename__ = "edge_alarms"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # contract.alarm_id(...)
    gateway_id: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    reading_id: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime)
    paged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareSite(Base):
    """A home or an EHPAD: the unit of tenancy (gateways carry its id as their ``site``)."""

    __tablename__ = "care_sites"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))


class User(Base):
    """A clinician or an operator. An admin with no site is global (sees every site)."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # admin | physician | nurse
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UserSite(Base):
    __tablename__ = "user_sites"
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("care_sites.id"), primary_key=True)


class RefreshToken(Base):
    """A refresh token (``cloud_api.refresh``), stored as its SHA-256 only. Every token of one
    login shares its ``family`` and its ``expires_at``; a rotation revokes the token presented
    and adds the next one. No foreign key on ``username``: removing a user must not be blocked
    by the tokens it leaves behind (they die with it, ``accounts.principal`` finds nobody)."""

    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_reason: Mapped[str | None] = mapped_column(String(16))  # rotated, logout, reuse...


class DisabledUser(Base):
    """A user who may no longer log in, refresh or use a token (a table of its own:
    ``create_all`` adds tables to an existing database, never columns)."""

    __tablename__ = "disabled_users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    disabled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled_by: Mapped[str] = mapped_column(String(64))


class Patient(Base):
    """A pseudonymous patient id and its care site, learnt from the gateway's site at ingest."""

    __tablename__ = "patients"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("care_sites.id"), index=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    """Who read or changed what, when, and with which outcome (never the data itself)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(512))
    patient_id: Mapped[str | None] = mapped_column(String(128), index=True)
    site_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | not_found | refused | error
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PatientProfile(Base):
    """What the care team declared about a patient (a table of its own: ``create_all`` adds
    tables to an existing database, never columns). ``settings`` is an
    ``alerting.settings.PatientSettings`` as JSON, validated before it is stored."""

    __tablename__ = "patient_profiles"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    age_group: Mapped[str | None] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class Device(Base):
    """A medical device of a site: paired to a gateway, and either one patient's or shared."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("care_sites.id"), index=True)
    family: Mapped[str | None] = mapped_column(String(64))
    gateway_id: Mapped[str | None] = mapped_column(String(128))
    patient_id: Mapped[str | None] = mapped_column(String(128))
    shared: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class GatewayConfig(Base):
    """Version of a gateway's device list (``cloud_api.gateway_config``; a table of its own:
    ``create_all`` adds tables to an existing database, never columns). ``version`` grows in
    the transaction of every device change touching the gateway; the ingest worker publishes
    the list (retained, QoS 1) and sets ``published_version`` once the broker acknowledged."""

    __tablename__ = "gateway_config"
    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # milliseconds: 64 bits
    published_version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine on ``url`` (``sqlite:///FILE``, ``postgresql+psycopg://...``), its database
    migrated to the newest schema first (``cloud_api.migrations``) unless ``migrate`` is
    false."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    if migrate:
        from cloud_api.migrations import upgrade

        upgrade(engine)
    return engine


def make_sessions(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
