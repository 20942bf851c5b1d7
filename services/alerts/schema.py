"""The alerts service's tables in the suite's store (every name prefixed ``alerts_``)."""

from __future__ import annotations

from services.alerts.database import PostgresStore, SqliteStore

__all__ = ["create_schema"]

_TABLES = """
CREATE TABLE IF NOT EXISTS alerts_rules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    secret TEXT NOT NULL DEFAULT '',
    create_time {real} NOT NULL,
    update_time {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts_alerts (
    alert_id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    rule_spec TEXT NOT NULL,
    rule_secret TEXT NOT NULL DEFAULT '',
    rule_update_time {real} NOT NULL,
    triggered_at {real} NOT NULL,
    fired_at {real},
    resolved_at {real},
    cleared_at {real},
    current_value {real},
    message TEXT NOT NULL,
    labels TEXT NOT NULL,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    acknowledged_at {real},
    notes TEXT NOT NULL DEFAULT '',
    notified INTEGER NOT NULL DEFAULT 0,
    last_notified_at {real},
    silenced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_alerts_state ON alerts_alerts (state);
CREATE TABLE IF NOT EXISTS alerts_silences (
    silence_id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at {real} NOT NULL,
    ends_at {real} NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS alerts_history (
    id {serial},
    time {real} NOT NULL,
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT NOT NULL DEFAULT '',
    to_state TEXT NOT NULL DEFAULT '',
    value {real},
    detail TEXT NOT NULL DEFAULT '',
    delivery TEXT
);
CREATE INDEX IF NOT EXISTS alerts_history_rule ON alerts_history (rule, id);
CREATE INDEX IF NOT EXISTS alerts_history_alert ON alerts_history (alert_id, id);
CREATE INDEX IF NOT EXISTS alerts_history_time ON alerts_history (time);
CREATE TABLE IF NOT EXISTS alerts_outbox (
    id {serial},
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    secret TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {real} NOT NULL,
    created_at {real} NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alerts_outbox_due ON alerts_outbox (next_attempt_at);
CREATE TABLE IF NOT EXISTS alerts_audit (
    id {serial},
    time {real} NOT NULL,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    request_id TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    changes TEXT NOT NULL,
    claimed_until {real} NOT NULL DEFAULT 0
);
INSERT INTO alerts_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

_SQLITE = {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_POSTGRES = {"real": "DOUBLE PRECISION", "serial": "BIGSERIAL PRIMARY KEY"}

# Any constant works; it only keeps replicas starting together from racing on CREATE TABLE.
_SCHEMA_LOCK = 0x616C657274730001


async def create_schema(db: SqliteStore | PostgresStore) -> None:
    """Create the tables if they do not exist yet."""
    ddl = _TABLES.format(**(_SQLITE if db.kind == "sqlite" else _POSTGRES))
    statements = [s.strip() for s in ddl.split(";") if s.strip()]
    async with db.transaction() as tx:
        if db.kind == "postgresql":
            await tx.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        for statement in statements:
            await tx.execute(statement)
