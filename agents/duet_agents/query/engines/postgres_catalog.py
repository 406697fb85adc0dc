"""PostgreSQL introspection from pg_catalog into a Catalog.

Only what the session's user can read: schemas it has USAGE on, relations it can SELECT from
(at least a column). Row counts are exact for small tables (a count(*) bounded by the engine's
statement timeout) and pg_class.reltuples estimates, marked as such, for the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from psycopg import sql as pgsql

from duet_agents.query.catalog import Catalog, Column, ForeignKey, Schema, Table, find_joins
from duet_agents.query.engines.errors import QueryError
from duet_agents.query.firewall import Dialect

Rows = Callable[..., list[tuple[Any, ...]]]

# Tables up to this size are counted exactly; beyond it the planner's estimate will do.
SMALL_TABLE_BYTES = 8 * 2**20
_KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}
# Every query keeps to the schemas the user may use, without the system's own.
_SCHEMAS = """
SELECT n.nspname, obj_description(n.oid, 'pg_namespace')
FROM pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_' AND has_schema_privilege(n.oid, 'USAGE')
ORDER BY n.nspname
"""
# Partitions are left out: their parent is the table a query names.
_TABLES = """
SELECT c.oid, n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
       c.reltuples, pg_relation_size(c.oid), has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_' AND has_schema_privilege(n.oid, 'USAGE')
  AND has_any_column_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname
"""
_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       col_description(a.attrelid, a.attnum), pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
# Key columns by name, in the key's order.
_CONSTRAINTS = """
SELECT con.conrelid, con.contype, con.conname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.i),
       fn.nspname, fc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.i)
FROM pg_constraint con
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY(%s::oid[]) AND con.contype IN ('p', 'f')
ORDER BY con.conrelid, con.conname
"""


def read_catalog(rows: Rows) -> Catalog:
    """The catalog, from queries run by `rows(query, params)` in read-only transactions."""
    database = str(rows("SELECT current_database()")[0][0])
    relations = rows(_TABLES)
    oids = [r[0] for r in relations]
    columns: dict[int, list[Column]] = defaultdict(list)
    for oid, name, type_, nullable, comment, default in rows(_COLUMNS, [oids]):
        columns[oid].append(
            Column(name=name, type=type_, nullable=nullable, comment=comment, default=default)
        )
    primary: dict[int, list[str]] = {}
    foreign: dict[int, list[ForeignKey]] = defaultdict(list)
    for oid, kind, name, keys, ref_schema, ref_table, ref_keys in rows(_CONSTRAINTS, [oids]):
        if kind == "p":
            primary[oid] = list(keys)
        else:
            foreign[oid].append(
                ForeignKey(
                    name=name,
                    columns=list(keys),
                    ref_schema=ref_schema,
                    ref_table=ref_table,
                    ref_columns=list(ref_keys),
                )
            )
    tables: dict[str, list[Table]] = defaultdict(list)
    for relation in relations:
        oid, schema, name, kind, comment = relation[:5]
        count, estimated = _row_count(rows, relation)
        tables[schema].append(
            Table(
                name=name,
                kind=_KINDS[kind],
                comment=comment,
                row_count=count,
                row_count_estimated=estimated,
                primary_key=primary.get(oid, []),
                columns=columns.get(oid, []),
                foreign_keys=foreign.get(oid, []),
            )
        )
    schemas = [
        Schema(name=name, comment=comment, tables=tables.get(name, []))
        for name, comment in rows(_SCHEMAS)
    ]
    catalog = Catalog(dialect=Dialect.POSTGRES, database=database, schemas=schemas)
    return catalog.model_copy(update={"joins": find_joins(catalog)})


def _row_count(rows: Rows, relation: tuple[Any, ...]) -> tuple[int | None, bool]:
    """(count, estimated): exact for a small readable table or materialized view, else the
    planner's estimate, else unknown (a view, a table never vacuumed or analysed)."""
    _, schema, name, kind, _, reltuples, size, selectable = relation
    if kind in ("r", "m") and selectable and size <= SMALL_TABLE_BYTES:
        query = pgsql.SQL("SELECT count(*) FROM {}.{}").format(
            pgsql.Identifier(schema), pgsql.Identifier(name)
        )
        try:
            return int(rows(query)[0][0]), False
        except QueryError:
            pass  # a slow or locked table: the estimate will do
    if reltuples is not None and reltuples >= 0 and kind in ("r", "m", "p", "f"):
        return int(reltuples), True
    return None, False
