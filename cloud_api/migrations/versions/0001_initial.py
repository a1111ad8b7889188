"""Initial schema: the tables ``create_all`` made before migrations.

A database made by ``create_all`` (before Alembic) is adopted as it is: the tables it already
has are kept and only the missing ones are created. That is exact, because the schema only
ever grew by whole tables (``create_all`` never added a column to an existing one).

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _table(existing: set[str], name: str, *columns: sa.Column[object] | sa.Constraint,
           indexes: tuple[tuple[str, list[str], bool], ...] = ()) -> None:
    if name in existing:
        return
    op.create_table(name, *columns)
    for index, on, unique in indexes:
        op.create_index(index, name, on, unique=unique)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    _table(existing, "alerts",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("patient_id", sa.String(length=128), nullable=False),
           sa.Column("rule", sa.String(length=64), nullable=False),
           sa.Column("severity", sa.String(length=16), nullable=False),
           sa.Column("category", sa.String(length=16), nullable=False),
           sa.Column("state", sa.String(length=16), nullable=False),
           sa.Column("opened_at", sa.DateTime(), nullable=False),
           sa.Column("last_at", sa.DateTime(), nullable=False),
           sa.Column("raised_at", sa.DateTime(), nullable=False),
           sa.Column("value", sa.Float(), nullable=True),
           sa.Column("message", sa.Text(), nullable=False),
           sa.Column("reading_id", sa.String(length=64), nullable=True),
           sa.Column("late", sa.Boolean(), nullable=False),
           sa.Column("count", sa.Integer(), nullable=False),
           sa.Column("details", sa.JSON(), nullable=True),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_alerts_patient_id", ["patient_id"], False),
               ("ix_alerts_state", ["state"], False),
           ))
    _table(existing, "audit_log",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("at", sa.DateTime(), nullable=False),
           sa.Column("username", sa.String(length=64), nullable=False),
           sa.Column("action", sa.String(length=64), nullable=False),
           sa.Column("resource", sa.String(length=512), nullable=False),
           sa.Column("patient_id", sa.String(length=128), nullable=True),
           sa.Column("site_id", sa.String(length=128), nullable=True),
           sa.Column("outcome", sa.String(length=16), nullable=False),
           sa.Column("detail", sa.JSON(), nullable=True),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_audit_log_at", ["at"], False),
               ("ix_audit_log_patient_id", ["patient_id"], False),
               ("ix_audit_log_username", ["username"], False),
           ))
    _table(existing, "care_sites",
           sa.Column("id", sa.String(length=128), nullable=False),
           sa.Column("name", sa.String(length=256), nullable=False),
           sa.PrimaryKeyConstraint("id"))
    _table(existing, "disabled_users",
           sa.Column("username", sa.String(length=64), nullable=False),
           sa.Column("disabled_at", sa.DateTime(), nullable=False),
           sa.Column("disabled_by", sa.String(length=64), nullable=False),
           sa.PrimaryKeyConstraint("username"))
    _table(existing, "edge_alarms",
           sa.Column("id", sa.String(length=64), nullable=False),
           sa.Column("gateway_id", sa.String(length=128), nullable=False),
           sa.Column("patient_id", sa.String(length=128), nullable=False),
           sa.Column("rule", sa.String(length=64), nullable=False),
           sa.Column("reading_id", sa.String(length=64), nullable=False),
           sa.Column("severity", sa.String(length=16), nullable=False),
           sa.Column("message", sa.Text(), nullable=False),
           sa.Column("measured_at", sa.DateTime(), nullable=False),
           sa.Column("paged_at", sa.DateTime(), nullable=False),
           sa.Column("received_at", sa.DateTime(), nullable=False),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_edge_alarms_patient_id", ["patient_id"], False),
           ))
    _table(existing, "gaps",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("gateway_id", sa.String(length=128), nullable=False),
           sa.Column("device_id", sa.String(length=128), nullable=False),
           sa.Column("first_seq", sa.Integer(), nullable=False),
           sa.Column("last_seq", sa.Integer(), nullable=False),
           sa.Column("detected_at", sa.DateTime(), nullable=False),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_gaps_gateway_id", ["gateway_id"], False),
           ))
    _table(existing, "gateway_config",
           sa.Column("gateway_id", sa.String(length=128), nullable=False),
           sa.Column("version", sa.BigInteger(), nullable=False),
           sa.Column("published_version", sa.BigInteger(), nullable=False),
           sa.Column("changed_at", sa.DateTime(), nullable=False),
           sa.PrimaryKeyConstraint("gateway_id"))
    _table(existing, "gateways",
           sa.Column("id", sa.String(length=128), nullable=False),
           sa.Column("site", sa.String(length=128), nullable=True),
           sa.Column("status", sa.String(length=16), nullable=False),
           sa.Column("status_at", sa.DateTime(), nullable=True),
           sa.Column("last_seen", sa.DateTime(), nullable=True),
           sa.Column("outbox_depth", sa.Integer(), nullable=True),
           sa.PrimaryKeyConstraint("id"))
    _table(existing, "notify_deliveries",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("key", sa.String(length=64), nullable=False),
           sa.Column("channel", sa.String(length=32), nullable=False),
           sa.Column("route", sa.String(length=256), nullable=False),
           sa.Column("site_id", sa.String(length=128), nullable=True),
           sa.Column("patient_id", sa.String(length=128), nullable=False),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.Column("next_at", sa.DateTime(), nullable=False),
           sa.Column("attempts", sa.Integer(), nullable=False),
           sa.Column("last_error", sa.Text(), nullable=True),
           sa.Column("body", sa.JSON(), nullable=False),
           sa.PrimaryKeyConstraint("id"),
           sa.UniqueConstraint("key"),
           indexes=(
               ("ix_notify_deliveries_next_at", ["next_at"], False),
           ))
    _table(existing, "pending_gateways",
           sa.Column("id", sa.String(length=128), nullable=False),
           sa.Column("first_seen", sa.DateTime(), nullable=False),
           sa.Column("last_seen", sa.DateTime(), nullable=False),
           sa.Column("messages", sa.BigInteger(), nullable=False),
           sa.Column("claimed_site", sa.String(length=128), nullable=True),
           sa.PrimaryKeyConstraint("id"))
    _table(existing, "quarantine",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("received_at", sa.DateTime(), nullable=False),
           sa.Column("topic", sa.String(length=512), nullable=False),
           sa.Column("gateway_id", sa.String(length=128), nullable=True),
           sa.Column("reading_id", sa.String(length=64), nullable=True),
           sa.Column("reason", sa.Text(), nullable=False),
           sa.Column("payload", sa.Text(), nullable=False),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_quarantine_received_at", ["received_at"], False),
           ))
    _table(existing, "refresh_tokens",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("token_hash", sa.String(length=64), nullable=False),
           sa.Column("username", sa.String(length=64), nullable=False),
           sa.Column("family", sa.String(length=32), nullable=False),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.Column("last_used_at", sa.DateTime(), nullable=True),
           sa.Column("expires_at", sa.DateTime(), nullable=False),
           sa.Column("revoked", sa.Boolean(), nullable=False),
           sa.Column("revoked_reason", sa.String(length=16), nullable=True),
           sa.PrimaryKeyConstraint("id"),
           sa.UniqueConstraint("token_hash"),
           indexes=(
               ("ix_refresh_tokens_family", ["family"], False),
               ("ix_refresh_tokens_username", ["username"], False),
           ))
    _table(existing, "streams",
           sa.Column("gateway_id", sa.String(length=128), nullable=False),
           sa.Column("device_id", sa.String(length=128), nullable=False),
           sa.Column("high_seq", sa.Integer(), nullable=False),
           sa.Column("last_seen", sa.DateTime(), nullable=True),
           sa.PrimaryKeyConstraint("gateway_id", "device_id"))
    _table(existing, "users",
           sa.Column("username", sa.String(length=64), nullable=False),
           sa.Column("password_hash", sa.String(length=256), nullable=False),
           sa.Column("role", sa.String(length=16), nullable=False),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.PrimaryKeyConstraint("username"))
    _table(existing, "alert_event_texts",
           sa.Column("alert_id", sa.Integer(), nullable=False),
           sa.Column("seq", sa.Integer(), nullable=False),
           sa.Column("messages", sa.JSON(), nullable=False),
           sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ),
           sa.PrimaryKeyConstraint("alert_id", "seq"))
    _table(existing, "alert_events",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("alert_id", sa.Integer(), nullable=False),
           sa.Column("seq", sa.Integer(), nullable=False),
           sa.Column("at", sa.DateTime(), nullable=False),
           sa.Column("who", sa.String(length=128), nullable=False),
           sa.Column("from_state", sa.String(length=16), nullable=True),
           sa.Column("to_state", sa.String(length=16), nullable=False),
           sa.Column("comment", sa.Text(), nullable=True),
           sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ),
           sa.PrimaryKeyConstraint("id"),
           sa.UniqueConstraint("alert_id", "seq"),
           indexes=(
               ("ix_alert_events_alert_id", ["alert_id"], False),
           ))
    _table(existing, "alert_timers",
           sa.Column("alert_id", sa.Integer(), nullable=False),
           sa.Column("state_at", sa.DateTime(), nullable=False),
           sa.Column("escalation_level", sa.Integer(), nullable=False),
           sa.Column("snoozed_until", sa.DateTime(), nullable=True),
           sa.Column("on_site_alarm", sa.String(length=64), nullable=True),
           sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ),
           sa.PrimaryKeyConstraint("alert_id"),
           indexes=(
               ("ix_alert_timers_state_at", ["state_at"], False),
           ))
    _table(existing, "devices",
           sa.Column("id", sa.String(length=128), nullable=False),
           sa.Column("site_id", sa.String(length=128), nullable=False),
           sa.Column("family", sa.String(length=64), nullable=True),
           sa.Column("gateway_id", sa.String(length=128), nullable=True),
           sa.Column("patient_id", sa.String(length=128), nullable=True),
           sa.Column("shared", sa.Boolean(), nullable=False),
           sa.Column("updated_at", sa.DateTime(), nullable=False),
           sa.Column("updated_by", sa.String(length=64), nullable=False),
           sa.ForeignKeyConstraint(["site_id"], ["care_sites.id"], ),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_devices_site_id", ["site_id"], False),
           ))
    _table(existing, "notify_events",
           sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
           sa.Column("alert_id", sa.Integer(), nullable=False),
           sa.Column("patient_id", sa.String(length=128), nullable=False),
           sa.Column("site_id", sa.String(length=128), nullable=True),
           sa.Column("change", sa.String(length=32), nullable=False),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.Column("body", sa.JSON(), nullable=False),
           sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_notify_events_alert_id", ["alert_id"], False),
               ("ix_notify_events_created_at", ["created_at"], False),
               ("ix_notify_events_patient_id", ["patient_id"], False),
           ))
    _table(existing, "patients",
           sa.Column("id", sa.String(length=128), nullable=False),
           sa.Column("site_id", sa.String(length=128), nullable=True),
           sa.Column("first_seen", sa.DateTime(), nullable=False),
           sa.ForeignKeyConstraint(["site_id"], ["care_sites.id"], ),
           sa.PrimaryKeyConstraint("id"),
           indexes=(
               ("ix_patients_site_id", ["site_id"], False),
           ))
    _table(existing, "user_sites",
           sa.Column("username", sa.String(length=64), nullable=False),
           sa.Column("site_id", sa.String(length=128), nullable=False),
           sa.ForeignKeyConstraint(["site_id"], ["care_sites.id"], ),
           sa.ForeignKeyConstraint(["username"], ["users.username"], ),
           sa.PrimaryKeyConstraint("username", "site_id"))
    _table(existing, "patient_profiles",
           sa.Column("patient_id", sa.String(length=128), nullable=False),
           sa.Column("age_group", sa.String(length=16), nullable=True),
           sa.Column("settings", sa.JSON(), nullable=False),
           sa.Column("updated_at", sa.DateTime(), nullable=False),
           sa.Column("updated_by", sa.String(length=64), nullable=False),
           sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ),
           sa.PrimaryKeyConstraint("patient_id"))


def downgrade() -> None:
    op.drop_table("patient_profiles")
    op.drop_table("user_sites")
    op.drop_table("patients")
    op.drop_table("notify_events")
    op.drop_table("devices")
    op.drop_table("alert_timers")
    op.drop_table("alert_events")
    op.drop_table("alert_event_texts")
    op.drop_table("users")
    op.drop_table("streams")
    op.drop_table("refresh_tokens")
    op.drop_table("quarantine")
    op.drop_table("pending_gateways")
    op.drop_table("notify_deliveries")
    op.drop_table("gateways")
    op.drop_table("gateway_config")
    op.drop_table("gaps")
    op.drop_table("edge_alarms")
    op.drop_table("disabled_users")
    op.drop_table("care_sites")
    op.drop_table("audit_log")
    op.drop_table("alerts")
