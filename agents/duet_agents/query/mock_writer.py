"""Writing mock data: the one place Duet writes rows into a database, and only when asked.

The query engines are read-only by design (engines/), so mock data has a write path of its own:
a connection per backend that reads the catalog and the existing keys, then, only when the
caller passes `write=True`, inserts the rows that mock.py generated, parents first. Without it
the connection is opened read-only (a `BEGIN READ ONLY` session on PostgreSQL, `readonly=1` on
ClickHouse), so a dry run cannot change anything even by mistake, and `fill` reports what it
would write: the tables, their row counts, and a few sample rows.

- ClickHouse and chDB: clickhouse-connect's `insert` (chDB through its `chdb` interface, the same
  client the chDB engine uses). ClickHouse has no transactions: tables are written one by one,
  and a failure leaves the tables before it written.
- PostgreSQL: psycopg `COPY ... FROM STDIN`, every table in one transaction (all or nothing),
  then each serial or identity column's sequence is moved past the keys written, so the
  application's next insert does not collide with them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import clickhouse_connect
import psycopg
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from psycopg import sql as pgsql
from psycopg.types.json import Json, Jsonb
from pydantic import BaseModel, ConfigDict

from duet_agents.query import mock
from duet_agents.query.catalog import Catalog, Schema
from duet_agents.query.engines.clickhouse import clickhouse_error
from duet_agents.query.engines.clickhouse_catalog import read_catalog as read_clickhouse_catalog
from duet_agents.query.engines.errors import ConnectionFailedError, InvalidURLError
from duet_agents.query.engines.postgres import postgres_error
from duet_agents.query.engines.postgres_catalog import read_catalog as read_postgres_catalog
from duet_agents.query.engines.urls import DatabaseURL, Scheme, parse_url
from duet_agents.query.firewall import Dialect

# Existing key values read per column group: what references to tables not being filled draw
# from, and what new unique keys avoid.
MAX_KEY_VALUES = 100_000
SAMPLE_ROWS = 3
_APPLICATION_NAME = "duet-mock"


class WriteNotRequestedError(mock.MockError):
    """An insert on a target opened without `write=True`."""


class TableReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str  # schema.table
    rows: int
    columns: list[str]
    # The first rows, as JSON values (decimals, dates, UUIDs as strings).
    sample: list[list[Any]]


class MockReport(BaseModel):
    """What `fill` generated and whether it wrote it."""

    model_config = ConfigDict(frozen=True)

    database: str  # the URL without its password
    written: bool
    seed: int
    tables: list[TableReport]
    notes: list[str]

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)


def fill(
    url: str | DatabaseURL,
    *,
    rows: int | Mapping[str, int],
    tables: Sequence[str] | None = None,
    seed: int = 0,
    write: bool = False,
    sample_size: int = SAMPLE_ROWS,
    now: datetime | None = None,
) -> MockReport:
    """Generate rows for the tables named (every writable table when None) and, only when
    `write` is true, insert them. Without `write` nothing is written: the report says what
    would be.

    Raises mock.MockError (unknown table, keys that cannot be kept consistent), InvalidURLError,
    ConnectionFailedError, and other QueryErrors when the database refuses a read or a write.
    """
    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    if tables is None and isinstance(rows, Mapping):
        tables = list(rows)
    with open_target(parsed, write=write) as target:
        catalog = target.introspect()
        enums = target.enums()
        selected = mock.resolve_tables(catalog, tables)
        state = target.read_state(mock.needed_state(catalog, selected, enums))
        data = mock.generate(
            catalog,
            rows=rows,
            tables=selected,
            seed=seed,
            existing=state,
            enums=enums,
            now=now,
        )
        if write:
            target.insert(data)
    return MockReport(
        database=parsed.redacted(),
        written=write,
        seed=seed,
        tables=[
            TableReport(
                table=t.qualified,
                rows=len(t.rows),
                columns=list(t.columns),
                sample=[[jsonable(v) for v in row] for row in t.rows[:sample_size]],
            )
            for t in data.tables
        ],
        notes=data.notes,
    )


def jsonable(value: Any) -> Any:
    """A generated value as JSON shows it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    # Decimal, UUID, IP addresses: their usual spelling.
    return str(value)


class Target(ABC):
    """A database connection that mock data is read for and written through."""

    dialect: ClassVar[Dialect]

    def __init__(self, description: str, *, writable: bool) -> None:
        self.description = description
        self.writable = writable

    @abstractmethod
    def introspect(self) -> Catalog:
        """The tables and joins, without columns the database computes itself."""

    def enums(self) -> dict[str, list[str]]:
        """Labels of enum types that columns are declared with, by type name."""
        return {}

    @abstractmethod
    def read_state(self, queries: Sequence[mock.StateQuery]) -> dict[str, mock.TableState]:
        """What the tables already hold, as `mock.needed_state` asked."""

    def insert(self, data: mock.MockData) -> dict[str, int]:
        """Insert the rows, parents first; the rows written per table."""
        if not self.writable:
            raise WriteNotRequestedError(
                f"{self.description} was opened read-only: pass write=True to write mock data"
            )
        return self._insert(data)

    @abstractmethod
    def _insert(self, data: mock.MockData) -> dict[str, int]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, writable={self.writable})"


def open_target(url: str | DatabaseURL, *, write: bool) -> Target:
    """A connection for mock data: read-only unless `write`."""
    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    if parsed.scheme is Scheme.POSTGRESQL:
        return PostgresTarget(parsed, writable=write)
    return ClickHouseTarget(parsed, writable=write)


# -- ClickHouse and chDB --------------------------------------------------------------------------


class ClickHouseTarget(Target):
    dialect = Dialect.CLICKHOUSE

    def __init__(self, url: DatabaseURL, *, writable: bool) -> None:
        super().__init__(url.redacted(), writable=writable)
        self._secrets = [url.secret()]
        self._client = _clickhouse_client(url, writable=writable)
        self._settings: dict[str, str] = {}
        if not writable and url.scheme is not Scheme.CHDB:
            self._settings = _read_only_settings(self._client, url)

    def introspect(self) -> Catalog:
        try:
            return read_clickhouse_catalog(self._rows, self._client.database)
        except ClickHouseError as e:
            raise clickhouse_error(e, self._secrets) from None

    def read_state(self, queries: Sequence[mock.StateQuery]) -> dict[str, mock.TableState]:
        try:
            return {q.qualified: self._state(q) for q in queries}
        except ClickHouseError as e:
            raise clickhouse_error(e, self._secrets) from None

    def _state(self, query: mock.StateQuery) -> mock.TableState:
        count = int(self._rows(_select("count()", query))[0][0])
        key_max: dict[str, int] = {}
        for column in query.max_of:
            # max() of an empty table is the type's default, 0: the keys then start at 1.
            found = self._rows(_select(f"max({quote_identifier(column)})", query))[0][0]
            key_max[column] = int(found or 0)
        key_values: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for group in query.values_of:
            names = ", ".join(quote_identifier(c) for c in group)
            present = " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in group)
            tail = f"WHERE {present} ORDER BY {names} LIMIT {MAX_KEY_VALUES}"
            key_values[group] = self._rows(_select(f"DISTINCT {names}", query, tail))
        return mock.TableState(rows=count, key_max=key_max, key_values=key_values)

    def _insert(self, data: mock.MockData) -> dict[str, int]:
        written: dict[str, int] = {}
        for table in data.tables:
            if table.rows:
                try:
                    self._client.insert(
                        table.table,
                        table.rows,
                        column_names=list(table.columns),
                        database=table.schema,
                    )
                except ClickHouseError as e:
                    error = clickhouse_error(e, self._secrets)
                    done = ", ".join(written) or "none"
                    error.message = f"{table.qualified}: {error.message} (tables written: {done})"
                    raise error from None
            written[table.qualified] = len(table.rows)
        return written

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        result = self._client.query(sql, settings=self._settings or None)
        return [tuple(row) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()


def _select(what: str, query: mock.StateQuery, tail: str = "") -> str:
    """A SELECT from the query's table; every name in `what` and `tail` is quoted with
    clickhouse-connect's quote_identifier."""
    table = f"{quote_identifier(query.schema)}.{quote_identifier(query.table)}"
    return f"SELECT {what} FROM {table} {tail}"  # noqa: S608 - quoted identifiers only


def _clickhouse_client(url: DatabaseURL, *, writable: bool) -> Client:
    try:
        if url.scheme is Scheme.CHDB:
            if url.path is None:
                raise InvalidURLError(
                    "an in-memory chdb:// has no tables to fill: use chdb:///path/to/data"
                )
            if not Path(url.path).is_dir():
                raise InvalidURLError(f"{url}: no chDB data directory at {url.path}")
            # The options are this connection's settings: readonly=1 for a dry run.
            return clickhouse_connect.get_client(
                interface="chdb",
                path=url.path,
                database=url.database,
                chdb_options=None if writable else {"readonly": "1"},
            )
        secure = url.scheme is Scheme.CLICKHOUSES
        options: dict[str, Any] = {}
        if "verify" in url.options:
            options["verify"] = url.options["verify"].lower() not in ("0", "false", "no", "off")
        if "ca_cert" in url.options:
            options["ca_cert"] = url.options["ca_cert"]
        return clickhouse_connect.get_client(
            host=url.host,
            port=url.port,
            username=url.user or "default",
            password=url.secret() or "",
            database=url.database,
            interface="https" if secure else "http",
            secure=secure,
            autogenerate_session_id=False,
            **options,
        )
    except ImportError:
        raise ConnectionFailedError(
            "chdb:// needs the chdb package: pip install 'duet[chdb]'"
        ) from None
    except ClickHouseError as e:
        error = clickhouse_error(e, [url.secret()])
        raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None


def _read_only_settings(client: Client, url: DatabaseURL) -> dict[str, str]:
    """The per-query settings that make a dry run read-only on a ClickHouse server: readonly=1,
    unless the user's profile already fixes readonly (then sending it would be refused)."""
    current = client.server_settings.get("readonly")
    if current is not None and current.value != "0":
        return {}
    if current is not None and current.readonly:
        client.close()
        raise ConnectionFailedError(
            f"{url}: this user may write and cannot be switched to readonly=1 for a dry run"
        )
    return {"readonly": "1"}


# -- PostgreSQL -----------------------------------------------------------------------------------

# Columns PostgreSQL computes (GENERATED ALWAYS AS ... STORED): COPY may not name them.
_GENERATED_COLUMNS = """
SELECT n.nspname, c.relname, a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attgenerated <> '' AND a.attnum > 0 AND NOT a.attisdropped
"""
# format_type spells an enum as the catalog spells the column's type.
_ENUMS = """
SELECT format_type(t.oid, NULL), array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
GROUP BY t.oid
"""
_JSON_TYPES = {"json": Json, "jsonb": Jsonb}
# Never backwards: the sequence may be ahead of every key (rows deleted since).
_SETVAL = """
SELECT setval(
    %(sequence)s::regclass,
    GREATEST(%(key)s, COALESCE(pg_sequence_last_value(%(sequence)s::regclass), 0))
)
"""


class PostgresTarget(Target):
    dialect = Dialect.POSTGRES

    def __init__(self, url: DatabaseURL, *, writable: bool) -> None:
        super().__init__(url.redacted(), writable=writable)
        self._url = url
        params: dict[str, Any] = {"connect_timeout": "10", "application_name": _APPLICATION_NAME}
        if not writable:
            # Every transaction read-only, even one psycopg did not open.
            params["options"] = "-c default_transaction_read_only=on"
        try:
            self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                host=url.host,
                port=url.port,
                user=url.user,
                password=url.secret(),
                dbname=url.database,
                autocommit=False,
                **(params | url.options),
            )
        except psycopg.Error as e:
            error = postgres_error(e, [url.secret()])
            raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None
        self._conn.read_only = not writable

    def introspect(self) -> Catalog:
        catalog = read_postgres_catalog(self._rows)
        generated = {(s, t, c) for s, t, c in self._rows(_GENERATED_COLUMNS)}
        if not generated:
            return catalog
        schemas = [
            Schema(
                name=schema.name,
                comment=schema.comment,
                tables=[
                    table.model_copy(
                        update={
                            "columns": [
                                c
                                for c in table.columns
                                if (schema.name, table.name, c.name) not in generated
                            ]
                        }
                    )
                    for table in schema.tables
                ],
            )
            for schema in catalog.schemas
        ]
        return catalog.model_copy(update={"schemas": schemas})

    def enums(self) -> dict[str, list[str]]:
        return {str(name): list(labels) for name, labels in self._rows(_ENUMS)}

    def read_state(self, queries: Sequence[mock.StateQuery]) -> dict[str, mock.TableState]:
        return {q.qualified: self._state(q) for q in queries}

    def _state(self, query: mock.StateQuery) -> mock.TableState:
        table = pgsql.Identifier(query.schema, query.table)
        count = int(self._rows(pgsql.SQL("SELECT count(*) FROM {}").format(table))[0][0])
        key_max: dict[str, int] = {}
        for column in query.max_of:
            statement = pgsql.SQL("SELECT max({}) FROM {}").format(pgsql.Identifier(column), table)
            key_max[column] = int(self._rows(statement)[0][0] or 0)
        key_values: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for group in query.values_of:
            names = pgsql.SQL(", ").join(pgsql.Identifier(c) for c in group)
            present = pgsql.SQL(" AND ").join(
                pgsql.SQL("{} IS NOT NULL").format(pgsql.Identifier(c)) for c in group
            )
            statement = pgsql.SQL(
                "SELECT DISTINCT {names} FROM {table} WHERE {present} ORDER BY {names} LIMIT {n}"
            ).format(names=names, table=table, present=present, n=pgsql.Literal(MAX_KEY_VALUES))
            key_values[group] = self._rows(statement)
        return mock.TableState(rows=count, key_max=key_max, key_values=key_values)

    def _rows(
        self, query: str | pgsql.SQL | pgsql.Composed, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of one read, in a transaction of its own (rolled back: it only read)."""
        try:
            with self._conn.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        except psycopg.Error as e:
            raise postgres_error(e, [self._url.secret()]) from None
        finally:
            self._conn.rollback()

    def _insert(self, data: mock.MockData) -> dict[str, int]:
        written: dict[str, int] = {}
        try:
            with self._conn.transaction(), self._conn.cursor() as cursor:
                for table in data.tables:
                    self._copy(cursor, table)
                    written[table.qualified] = len(table.rows)
                for table in data.tables:
                    _advance_sequences(cursor, table)
        except psycopg.Error as e:
            raise postgres_error(e, [self._url.secret()]) from None
        return written

    def _copy(self, cursor: psycopg.Cursor[tuple[Any, ...]], table: mock.TableData) -> None:
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(table.schema, table.table),
            pgsql.SQL(", ").join(pgsql.Identifier(c) for c in table.columns),
        )
        # psycopg needs to be told a dict is JSON; the column's type says which kind.
        wrappers = [_JSON_TYPES.get(t) for t in table.types]
        with cursor.copy(statement) as copy:
            for row in table.rows:
                copy.write_row(
                    [
                        w(v) if w is not None and v is not None else v
                        for w, v in zip(wrappers, row, strict=True)
                    ]
                )

    def close(self) -> None:
        self._conn.close()


def _advance_sequences(cursor: psycopg.Cursor[tuple[Any, ...]], table: mock.TableData) -> None:
    """Move each serial or identity column's sequence past the largest key written, so the
    next row the application inserts does not collide with it."""
    name = pgsql.Identifier(table.schema, table.table).as_string(cursor.connection)
    for index, column in enumerate(table.columns):
        keys = [row[index] for row in table.rows if isinstance(row[index], int)]
        if not keys:
            continue
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", (name, column))
        found = cursor.fetchone()
        if found is None or found[0] is None:
            continue
        cursor.execute(_SETVAL, {"sequence": found[0], "key": max(keys)})
