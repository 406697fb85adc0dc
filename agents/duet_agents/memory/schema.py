"""The memory's tables, and the migrations that bring a database to them.

One schema for SQLite and PostgreSQL, in SQLAlchemy Core types both have:

- `designs`: one row per design a platform was given (or per imported lesson's platform):
  its requirement figures, their point in the unit box (`n_*`, what the lookup filters on),
  the description's word hashes and optional embedding, and the design itself.
- `outcomes`: how a design fared over time (time to Ready, symptoms, OOM kills, disk use).
- `remediations`: each healer decision under its Remediation object's name, with the sizes
  it changed and how it ended.
- `schema_version`: one row, the number of migrations applied.

A migration is a function of a connection, run once, in order, inside one transaction with
the version bump. The tables below are the newest schema; migration 1 creates them as they
were at version 1, so a later change adds migration 2 (an ALTER) and copies the version-1
definitions into migration 1 first.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    select,
)

metadata = MetaData()

designs = Table(
    "designs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(253), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),  # "planner" or "import"
    Column("data_bytes", BigInteger, nullable=False),
    Column("ingest_rows_per_second", BigInteger, nullable=False),
    Column("retention_days", Integer, nullable=False),
    Column("concurrent_queries", Integer, nullable=False),
    Column("latency_seconds", Float, nullable=False),
    Column("availability", String(16), nullable=False),
    Column("n_data", Float, nullable=False),
    Column("n_ingest", Float, nullable=False),
    Column("n_retention", Float, nullable=False),
    Column("n_queries", Float, nullable=False),
    Column("n_latency", Float, nullable=False),
    Column("words", JSON, nullable=False),
    Column("embedding", JSON, nullable=True),
    Column("design", JSON, nullable=True),
    Column("planner", String(64), nullable=True),
    Column("model", String(256), nullable=True),
    Column("cost_usd", Float, nullable=True),
    Index("designs_platform", "platform", "id"),
    Index(
        "designs_box", "availability", "n_data", "n_ingest", "n_retention", "n_queries", "n_latency"
    ),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("design_id", Integer, ForeignKey("designs.id", ondelete="CASCADE"), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("time_to_ready_seconds", Float, nullable=True),
    Column("symptom", String(32), nullable=True),
    Column("component", String(16), nullable=True),
    Column("oom_kills", Integer, nullable=False),
    Column("disk_used_fraction", Float, nullable=True),
    Index("outcomes_design", "design_id"),
)

remediations = Table(
    "remediations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("design_id", Integer, ForeignKey("designs.id", ondelete="CASCADE"), nullable=False),
    Column("symptom", String(32), nullable=False),
    Column("component", String(16), nullable=True),
    Column("action", String(32), nullable=False),
    Column("before", String(32), nullable=True),
    Column("after", String(32), nullable=True),
    Column("phase", String(16), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Index("remediations_pattern", "symptom", "component", "action"),
    Index("remediations_design", "design_id"),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

_VERSION_1 = (designs, outcomes, remediations)


def _create_version_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(_VERSION_1))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_create_version_1,)
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """Migrations applied so far: 0 for a new database."""
    return conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0


def migrate(conn: Connection) -> int:
    """Apply the migrations `conn`'s database lacks, within the caller's transaction (which
    must hold the store's migration lock); the version it ends at. A database newer than
    this code is refused: its tables may mean something this code does not know."""
    metadata.create_all(conn, tables=[schema_version])
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the memory database is at schema version {version}, newer than this Duet's "
            f"{SCHEMA_VERSION}: upgrade Duet"
        )
    for migration in MIGRATIONS[version:]:
        migration(conn)
    if version == 0:
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    elif version < SCHEMA_VERSION:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
