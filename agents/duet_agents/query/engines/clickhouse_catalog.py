"""ClickHouse introspection: system.databases, system.tables and system.columns into a Catalog.

Runs through the engine's own read-only session (these are plain SELECTs), so it sees what the
user may see: ClickHouse lists only the tables the user has been granted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlglot
from sqlglot import TokenType
from sqlglot.errors import SqlglotError

from duet_agents.query.catalog import Catalog, Column, Schema, Table, find_joins
from duet_agents.query.firewall import Dialect

Rows = Callable[[str], list[tuple[Any, ...]]]

# Every query leaves out the server's own databases: system, information_schema and
# INFORMATION_SCHEMA.
_DATABASES = """
SELECT name, comment FROM system.databases
WHERE name NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')
ORDER BY name
"""
# `.inner` tables hold materialized views' data under generated names; the view is listed.
_TABLES = """
SELECT database, name, engine, comment, total_rows, primary_key, sorting_key
FROM system.tables
WHERE database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')
  AND NOT is_temporary AND NOT startsWith(name, '.inner')
ORDER BY database, name
"""
_COLUMNS = """
SELECT database, table, name, type, comment, default_kind, default_expression
FROM system.columns
WHERE database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')
ORDER BY database, table, position
"""
# Engines whose total_rows is an exact count kept by the server.
_EXACT_COUNT_ENGINES = ("MergeTree", "Memory", "Set", "Join", "Log", "TinyLog", "StripeLog")


def read_catalog(rows: Rows, database: str | None) -> Catalog:
    """The catalog from three queries run by `rows`; `database` is the session's default
    (None: ask the server)."""
    if database is None:
        database = str(rows("SELECT currentDatabase()")[0][0])
    columns: dict[tuple[str, str], list[Column]] = defaultdict(list)
    for db, table, name, type_, comment, default_kind, default_expr in rows(_COLUMNS):
        columns[db, table].append(
            Column(
                name=name,
                type=type_,
                nullable=_nullable(type_),
                comment=comment or None,
                default=_default(default_kind, default_expr),
            )
        )
    tables: dict[str, list[Table]] = defaultdict(list)
    for db, name, engine, comment, total_rows, primary_key, sorting_key in rows(_TABLES):
        exact = engine.endswith(_EXACT_COUNT_ENGINES)
        tables[db].append(
            Table(
                name=name,
                kind=engine,
                comment=comment or None,
                row_count=int(total_rows) if total_rows is not None and exact else None,
                primary_key=split_key(primary_key),
                sorting_key=split_key(sorting_key),
                columns=columns.get((db, name), []),
            )
        )
    schemas = [
        Schema(name=name, comment=comment or None, tables=tables.get(name, []))
        for name, comment in rows(_DATABASES)
    ]
    catalog = Catalog(dialect=Dialect.CLICKHOUSE, database=database, schemas=schemas)
    return catalog.model_copy(update={"joins": find_joins(catalog)})


def split_key(expression: str) -> list[str]:
    """`system.tables.primary_key` ("id, toDate(ts)") as its expressions, each in the server's
    own spelling: split at the commas outside brackets, found by sqlglot's tokenizer (which
    knows ClickHouse's quoting); the whole text as one expression if it cannot tokenize it."""
    text = expression.strip()
    if not text:
        return []
    try:
        tokens = sqlglot.tokenize(text, read="clickhouse")
    except SqlglotError:
        return [text]
    parts, start, depth = [], 0, 0
    for token in tokens:
        if token.token_type in _OPEN:
            depth += 1
        elif token.token_type in _CLOSE:
            depth -= 1
        elif token.token_type is TokenType.COMMA and depth == 0:
            parts.append(text[start : token.start].strip())
            start = token.end + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


_OPEN = frozenset({TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE})
_CLOSE = frozenset({TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE})


def _nullable(type_: str) -> bool:
    return type_.startswith(("Nullable(", "LowCardinality(Nullable("))


def _default(kind: str, expression: str) -> str | None:
    if not expression:
        return None
    return expression if kind in ("", "DEFAULT") else f"{kind} {expression}"
