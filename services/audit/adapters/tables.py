"""The ledger tables (SQLAlchemy Core) and the triggers that make them append-only in SQLite and PostgreSQL.

The triggers are installed by a MetaData after_create hook, so whoever calls metadata.create_all (the
service runtime or LedgerStore.create_schema) gets them; the statements are idempotent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    event,
)

metadata = MetaData()

# INTEGER PRIMARY KEY on SQLite makes sequence the rowid: no second index, ordered range scans.
_Sequence = BigInteger().with_variant(Integer(), "sqlite")

entries = Table(
    "audit_entries",
    metadata,
    Column("sequence", _Sequence, primary_key=True, autoincrement=False),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("producer", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("occurred_at", String(40), nullable=False),
    Column("trace_id", String(32), nullable=True),
    Column("payload_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("signature_key_id", String(64), nullable=True),
    Column("signature_value", String(200), nullable=True),
    Column("entry_hash", String(64), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    # Evidence packs read every entry about a job, a model version or an incident.
    Index("audit_entries_subject", "subject"),
)

# Roots of completed perfect subtrees of at least 2**NODE_MIN_LEVEL leaves (about n/128 rows): with them a
# proof or the frontier after a restart needs O(log n) lookups plus at most 255 leaves per subtree.
nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

tree_heads = Table(
    "audit_tree_heads",
    metadata,
    Column("tree_size", _Sequence, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("timestamp", String(40), nullable=False),
    Column("log_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("checkpoint_signature", String(128), nullable=False),
)

LEDGER_TABLES = ("audit_entries", "audit_nodes", "audit_tree_heads")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'tunegate audit ledger is append-only: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$fn$
"""


def trigger_statements(dialect: str) -> list[str]:
    statements: list[str] = []
    if dialect == "sqlite":
        for table in LEDGER_TABLES:
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'tunegate audit ledger is append-only: {op} on {table} refused'); "
                    "END"
                )
    elif dialect == "postgresql":
        statements.append(_PG_FUNCTION)
        for table in LEDGER_TABLES:
            statements.append(
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            )
            statements.append(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
            )
    else:
        raise RuntimeError(f"audit ledger: no append-only triggers for database dialect {dialect!r}")
    return statements


def install_triggers(connection: Connection) -> None:
    for statement in trigger_statements(connection.dialect.name):
        connection.exec_driver_sql(statement, execution_options={"no_parameters": True})


@event.listens_for(metadata, "after_create")
def _after_create(_target: MetaData, connection: Connection, **_kw: Any) -> None:
    install_triggers(connection)
