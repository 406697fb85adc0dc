"""The values a question may name: the distinct values of a database's low-cardinality text
columns, so "orders from Germany" finds `customers.country = 'Germany'`.

    values = collect_values(engine, catalog, max_distinct=100)
    translation = answer("How many orders came from Germany?", catalog, values=values)

Collected once per catalog by the caller (the query server at start and on schema changes),
through the engine and the firewall like any other query, and kept as a plain model: it can
be cached as JSON next to the catalog.
"""

from __future__ import annotations

import re

import sqlglot
from pydantic import BaseModel, ConfigDict
from sqlglot import exp

from duet_agents.query import guarded
from duet_agents.query.catalog import Catalog, Column, Table
from duet_agents.query.engines.base import Engine
from duet_agents.query.engines.errors import QueryError
from duet_agents.query.nl.schema import is_text

DEFAULT_MAX_DISTINCT = 100
# Longer strings are prose (descriptions, addresses), not values a question names.
DEFAULT_MAX_LENGTH = 64
# Identifiers and free text rather than categories, by the column's name.
_SKIPPED_NAMES = re.compile(
    r"(^|_)(id|uuid|guid|hash|token|password|secret|key|email|phone|address|description"
    r"|comment|body|text|message|note|notes|url|ip)$",
    re.IGNORECASE,
)


class ColumnValues(BaseModel):
    """The distinct values of one column."""

    model_config = ConfigDict(frozen=True)

    schema_name: str
    table: str
    column: str
    values: list[str]


class ValueIndex(BaseModel):
    """Distinct values of the low-cardinality text columns of a catalog."""

    model_config = ConfigDict(frozen=True)

    columns: list[ColumnValues] = []

    def of(self, schema: str, table: str, column: str) -> list[str]:
        for c in self.columns:
            if (c.schema_name, c.table, c.column) == (schema, table, column):
                return c.values
        return []


def collect_values(
    engine: Engine,
    catalog: Catalog,
    *,
    max_distinct: int = DEFAULT_MAX_DISTINCT,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> ValueIndex:
    """The distinct values of every text column of `catalog` that has at most `max_distinct`
    of them, read through `engine` with the firewall in front (guarded.run).

    A column with more values, a longer value, a name that says it holds identifiers or
    contact details, or a query that fails (a view that no longer resolves, a denied table)
    is left out: the index is a help for linking, never a reason to fail.
    """
    found: list[ColumnValues] = []
    for schema in catalog.schemas:
        for table in schema.tables:
            for column in table.columns:
                if not _candidate(table, column):
                    continue
                values = _distinct(
                    engine,
                    catalog=catalog,
                    schema=schema.name,
                    table=table,
                    column=column,
                    max_distinct=max_distinct,
                )
                if values is not None and all(len(v) <= max_length for v in values):
                    found.append(
                        ColumnValues(
                            schema_name=schema.name,
                            table=table.name,
                            column=column.name,
                            values=sorted(values),
                        )
                    )
    return ValueIndex(columns=found)


def _candidate(table: Table, column: Column) -> bool:
    return (
        is_text(column.type)
        and not _SKIPPED_NAMES.search(column.name)
        and column.name not in table.primary_key
    )


def _distinct(
    engine: Engine,
    *,
    catalog: Catalog,
    schema: str,
    table: Table,
    column: Column,
    max_distinct: int,
) -> list[str] | None:
    """The column's distinct non-empty values, or None when it has more than max_distinct."""
    name = exp.column(column.name, quoted=True)
    query = (
        exp.select(name)
        .distinct()
        .from_(exp.table_(table.name, db=schema, quoted=True))
        .where(
            exp.and_(
                exp.Not(this=exp.Is(this=name.copy(), expression=exp.Null())),
                exp.NEQ(this=name.copy(), expression=exp.Literal.string("")),
            )
        )
        .limit(max_distinct + 1)
    )
    sql = query.sql(dialect=str(catalog.dialect))
    try:
        result = guarded.run(engine, sql, max_rows=max_distinct)
    except (QueryError, sqlglot.errors.SqlglotError):
        return None
    if result.truncated or len(result.rows) > max_distinct:
        return None
    return [str(row[0]) for row in result.rows]
