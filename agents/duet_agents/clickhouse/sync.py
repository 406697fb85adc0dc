"""Reading a host's schema and replaying it on another, through clickhouse-connect clients.

The operator calls `sync_host` for each new host with an admin client on a healthy replica
(or the schema it already read from one) and one on the new host. clickhouse-connect's
client is synchronous (and the only one with a chDB backend), so each call runs in a worker
thread; the statements of one host run one after another, in the plan's order.

Errors name the object and ClickHouse's error, never the statement: definitions can hold
credentials (a dictionary's source, an external table's).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import BaseModel, ConfigDict

from duet_agents.clickhouse.schema import (
    SYSTEM_DATABASES,
    DatabaseInfo,
    HostSchema,
    ReplayPlan,
    SchemaDiff,
    TableInfo,
    TableRef,
    compare,
    replay_plan,
)

NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Columns of system.tables that older servers lack; read as empty where missing.
_OPTIONAL_COLUMNS = {
    "as_select": "''",
    "loading_dependencies_database": "[]",
    "loading_dependencies_table": "[]",
    "target_database": "''",
    "target_table": "''",
}
_SERVER_ERROR = re.compile(r"Code: \d+\. DB::Exception: [^\n]*")
_REASON_LENGTH = 300


class SchemaSyncError(Exception):
    """A statement of the replay failed; names the object, not the statement."""

    def __init__(self, object_name: str, reason: str) -> None:
        super().__init__(f"creating {object_name} failed: {reason}")
        self.object_name = object_name


class SyncReport(BaseModel):
    """What one sync did: how many statements ran, and where the host stands after."""

    model_config = ConfigDict(frozen=True)

    executed: int
    plan: ReplayPlan
    diff: SchemaDiff


async def read_host(client: Client) -> HostSchema:
    """The databases, tables and macros the host reports."""
    return await asyncio.to_thread(_read_host, client)


async def apply_plan(client: Client, plan: ReplayPlan) -> int:
    """Run the plan's statements in order on the host; how many ran."""
    return await asyncio.to_thread(_apply, client, plan)


async def sync_host(source: Client | HostSchema, target: Client) -> SyncReport:
    """Give `target` every database and table `source` has, then compare them again.

    `source` may be a schema already read, so that many new hosts are brought up from one
    reading of the healthy replica.
    """
    schema = source if isinstance(source, HostSchema) else await read_host(source)
    plan = replay_plan(schema)
    executed = await apply_plan(target, plan)
    after = await read_host(target)
    return SyncReport(executed=executed, plan=plan, diff=compare(schema, after))


def _read_host(client: Client) -> HostSchema:
    macros = {
        str(k): str(v) for k, v in _rows(client, "SELECT macro, substitution FROM system.macros")
    }
    databases = [
        DatabaseInfo(name=name, engine=engine, engine_full=engine_full or "", uuid=_uuid(uuid))
        for name, engine, engine_full, uuid in _rows(
            client,
            "SELECT name, engine, engine_full, toString(uuid) FROM system.databases"
            " WHERE name NOT IN {excluded:Array(String)} ORDER BY name",
        )
    ]
    present = {
        str(row[0])
        for row in _rows(
            client, "SELECT name FROM system.columns WHERE database = 'system' AND table = 'tables'"
        )
    }
    optional = ", ".join(
        f"{name}" if name in present else f"{empty} AS {name}"
        for name, empty in _OPTIONAL_COLUMNS.items()
    )
    # Only names from _OPTIONAL_COLUMNS are spliced in; the rest is bound.
    tables_sql = (
        "SELECT database, name, toString(uuid), engine, create_table_query,"  # noqa: S608
        f" dependencies_database, dependencies_table, {optional} FROM system.tables"
        " WHERE NOT is_temporary AND database NOT IN {excluded:Array(String)}"
        " ORDER BY database, name"
    )
    tables = [_table(row) for row in _rows(client, tables_sql)]
    return HostSchema(macros=macros, databases=databases, tables=tables)


def _table(row: Sequence[Any]) -> TableInfo:
    (database, name, uuid, engine, query, dep_dbs, dep_tables, as_select) = row[:8]
    (load_dbs, load_tables, target_db, target_table) = row[8:]
    return TableInfo(
        database=database,
        name=name,
        uuid=_uuid(uuid),
        engine=engine,
        create_table_query=query,
        as_select=as_select or "",
        dependents=_refs(dep_dbs, dep_tables),
        loading_dependencies=_refs(load_dbs, load_tables),
        target=TableRef(database=target_db, name=target_table) if target_table else None,
    )


def _apply(client: Client, plan: ReplayPlan) -> int:
    for statement in plan.statements:
        try:
            client.command(statement.sql)
        except ClickHouseError as e:
            raise SchemaSyncError(statement.object, _reason(e)) from None
    return len(plan.statements)


def _rows(client: Client, sql: str) -> list[Sequence[Any]]:
    excluded = sorted(SYSTEM_DATABASES)
    return list(client.query(sql, parameters={"excluded": excluded}).result_rows)


def _refs(databases: Sequence[str], tables: Sequence[str]) -> list[TableRef]:
    return [TableRef(database=d, name=t) for d, t in zip(databases, tables, strict=True)]


def _uuid(value: object) -> str | None:
    text = str(value) if value is not None else ""
    return None if text in ("", NIL_UUID) else text


def _reason(error: ClickHouseError) -> str:
    # ClickHouse's code and the start of its message (the HTTP client puts them after a line
    # of its own); a syntax error's message quotes a little of the statement, so keep it short.
    text = str(error)
    found = _SERVER_ERROR.search(text)
    line = found.group(0) if found else (text.strip().splitlines() or [type(error).__name__])[0]
    return line[:_REASON_LENGTH]
