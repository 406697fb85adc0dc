"""Database engines for the query agent: `connect(url, limits=...)` and what it returns.

    with connect("chdb:///var/lib/duet/chdb", limits=Limits(max_rows=100)) as engine:
        catalog = engine.introspect()
        result = engine.execute("SELECT count() FROM events")

Every engine executes read-only at the database level; the SQL firewall is applied above it
(`duet_agents.query.guarded.run`). See docs/query-engines.md.
"""

from __future__ import annotations

from duet_agents.query.engines.base import Engine, Limits, Result, ResultColumn
from duet_agents.query.engines.errors import (
    ConnectionFailedError,
    InvalidURLError,
    QueryDeniedError,
    QueryError,
    QueryFailedError,
    QueryTimeoutError,
)
from duet_agents.query.engines.urls import DatabaseURL, Scheme, parse_url

__all__ = [
    "ConnectionFailedError",
    "DatabaseURL",
    "Engine",
    "InvalidURLError",
    "Limits",
    "QueryDeniedError",
    "QueryError",
    "QueryFailedError",
    "QueryTimeoutError",
    "Result",
    "ResultColumn",
    "connect",
    "parse_url",
]


def connect(url: str | DatabaseURL, *, limits: Limits | None = None) -> Engine:
    """An engine for `url` (chdb://, clickhouse[s]://, postgres[ql]://), connected, or a
    QueryError that names the URL without its password."""
    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    limits = limits or Limits()
    # Drivers are imported on demand: a PostgreSQL user needs no chDB, and the reverse.
    if parsed.scheme is Scheme.CHDB:
        from duet_agents.query.engines.chdb import connect_chdb  # noqa: PLC0415

        return connect_chdb(parsed, limits)
    if parsed.scheme in (Scheme.CLICKHOUSE, Scheme.CLICKHOUSES):
        from duet_agents.query.engines.clickhouse import connect_clickhouse  # noqa: PLC0415

        return connect_clickhouse(parsed, limits)
    from duet_agents.query.engines.postgres import connect_postgres  # noqa: PLC0415

    return connect_postgres(parsed, limits)
