"""The two guards together: the SQL firewall, then an engine that runs read-only anyway.

    result = guarded.run(engine, model_sql, max_rows=100)

The firewall refuses anything but one read-only query and adds a row cap; the engine runs
what the firewall printed, in a read-only session (docs/query-engines.md). The cap asked of the
firewall is one row above `max_rows`, so a result that reaches it is known to be cut:
`truncated` then says there was more.
"""

from __future__ import annotations

from dataclasses import replace

from duet_agents.query.engines.base import Engine, Result
from duet_agents.query.engines.errors import QueryError
from duet_agents.query.firewall import Category, check


class QueryRefusedError(QueryError):
    """The firewall refused the statement; nothing reached the database."""

    def __init__(self, reason: str, category: Category | None) -> None:
        super().__init__(reason, code=None if category is None else str(category))
        self.reason = reason
        self.category = category


def run(engine: Engine, sql: str, *, max_rows: int | None = None) -> Result:
    """Check `sql` with the firewall and run what it allows on `engine`, returning at most
    `max_rows` rows (default: the engine's limit). Raises QueryRefusedError, or the engine's
    QueryError."""
    rows = min(max_rows or engine.limits.max_rows, engine.limits.max_rows)
    verdict = check(sql, engine.dialect, max_rows=rows + 1)
    if not verdict.allowed or verdict.sql is None:
        reason = verdict.reason or "refused"
        raise QueryRefusedError(reason, verdict.category)
    result = engine.execute(verdict.sql)
    if len(result.rows) > rows:
        return replace(result, rows=result.rows[:rows], truncated=True)
    return result
