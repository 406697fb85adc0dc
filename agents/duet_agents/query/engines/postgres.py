"""PostgreSQL through psycopg 3, read-only at the database whatever the statement says.

Four layers, each enough to stop a write on its own:
- every statement runs in its own `BEGIN READ ONLY` transaction, rolled back afterwards, so a
  `SET`, `set_config(...)` or `SET TRANSACTION READ WRITE` dies with the transaction it ran in;
- statements go over the extended query protocol (psycopg's `stream()`), which carries exactly
  one statement: `COMMIT; INSERT ...` or `SET TRANSACTION READ WRITE; INSERT ...` is refused
  by the server as several commands, where the simple protocol would run them in turn;
- the session starts with `default_transaction_read_only=on` (as does the operator's
  `readonly` role), so even a transaction the engine did not open is read-only;
- the role itself: the operator's `readonly` role holds SELECT and nothing else; a superuser,
  or a role that may write server files or run programs, is refused at connect time, since
  COPY ... TO counts as a read and would pass a read-only transaction.

`statement_timeout` bounds each statement, `idle_in_transaction_session_timeout` a session
left inside a transaction, and rows are streamed: at most `max_rows + 1` are fetched, then the
statement is cancelled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, cast

import psycopg
from psycopg import sql as pgsql

from duet_agents.query.catalog import Catalog
from duet_agents.query.engines.base import Engine, Limits, Result, ResultColumn, cap
from duet_agents.query.engines.errors import (
    ConnectionFailedError,
    QueryDeniedError,
    QueryError,
    QueryFailedError,
    QueryTimeoutError,
    scrub,
)
from duet_agents.query.engines.postgres_catalog import read_catalog
from duet_agents.query.engines.urls import DatabaseURL
from duet_agents.query.firewall import Dialect

Row = tuple[Any, ...]
Query = str | pgsql.Composed
# A result column: its name, type oid and type modifier.
Field = tuple[str, int, int]
_APPLICATION_NAME = "duet-query"
# Rows per round trip when streaming (libpq 17's chunked mode), else one at a time.
_CHUNK_ROWS = 500
_DENIED_STATES = frozenset({"25006", "42501"})  # read_only_sql_transaction, insufficient_privilege
# connection exceptions, invalid authorization, shutdown, idle-in-transaction timeout
_CONNECTION_STATE_CLASSES = ("08", "28", "57P")
_CONNECTION_STATES = frozenset({"25P03"})


# What a read-only transaction does not hold back: a superuser, COPY TO a server file or to a
# program (both count as reads). The engine refuses such a user rather than trust the SQL.
_POWERS = """
SELECT current_setting('is_superuser') = 'on'
    OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER')
    OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')
"""


def session_settings(limits: Limits) -> dict[str, str]:
    """The settings every session starts with (libpq `options`)."""
    timeout_ms = math.ceil(limits.timeout_seconds * 1000)
    return {
        "default_transaction_read_only": "on",
        "statement_timeout": str(timeout_ms),
        "lock_timeout": str(timeout_ms),
        # The engine ends each transaction at once; a session idling inside one is stuck.
        "idle_in_transaction_session_timeout": str(timeout_ms + 10_000),
    }


def postgres_error(error: psycopg.Error, secrets: Iterable[str | None] = ()) -> QueryError:
    """A psycopg exception as a QueryError, by SQLSTATE."""
    state = error.sqlstate
    message = scrub(str(error).strip(), secrets) or type(error).__name__
    if state == "57014":  # query_canceled: statement_timeout (the engine's own cancel is quiet)
        return QueryTimeoutError(message, code=state)
    if state in _DENIED_STATES:
        return QueryDeniedError(message, code=state)
    if state is not None and (
        state in _CONNECTION_STATES or state.startswith(_CONNECTION_STATE_CLASSES)
    ):
        return ConnectionFailedError(message, code=state)
    if state is None and isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return ConnectionFailedError(message)
    return QueryFailedError(message, code=state)


class PostgresEngine(Engine):
    """One connection, one statement at a time (a lock serialises threads)."""

    dialect = Dialect.POSTGRES

    def __init__(self, url: DatabaseURL, limits: Limits) -> None:
        super().__init__(limits, url.redacted())
        self._url = url
        self._lock = threading.Lock()
        self._types: dict[tuple[int, int], str] = {}
        self._conn: psycopg.Connection[Row] | None = self._open()

    def execute(self, sql: str) -> Result:
        with self._lock:
            conn = self._connection()
            started = time.perf_counter()
            try:
                with conn.cursor() as cursor:
                    rows, fields = self._stream(cursor, sql)
            except psycopg.Error as e:
                raise postgres_error(e, [self._url.secret()]) from e
            finally:
                self._end_transaction(conn)
            elapsed_ms = (time.perf_counter() - started) * 1000
            types = self._type_names([(oid, mod) for _, oid, mod in fields])
        kept, truncated = cap(rows, self.limits.max_rows)
        return Result(
            columns=[ResultColumn(name, types[oid, mod]) for name, oid, mod in fields],
            rows=kept,
            truncated=truncated,
            elapsed_ms=elapsed_ms,
            sql=sql,
        )

    def _stream(self, cursor: psycopg.Cursor[Row], sql: str) -> tuple[list[Row], list[Field]]:
        size = _CHUNK_ROWS if psycopg.capabilities.has_stream_chunked() else 1
        # psycopg's stream() is a generator; closing it cancels the statement and drains it.
        stream = cast(Generator[Row, None, None], cursor.stream(sql, size=size))
        try:
            rows = list(islice(stream, self.limits.max_rows + 1))
            result = cursor.pgresult if rows else None
            fields = [] if result is None else _fields(result, cursor.connection.info.encoding)
        finally:
            stream.close()
        if not rows:
            # stream() keeps no description of an empty result: describe the statement.
            fields = _describe(cursor.connection, sql)
        return rows, fields

    def _type_names(self, types: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
        """PostgreSQL's own names for result types (`bigint`, `numeric(10,2)`), as the catalog
        spells them; looked up once per type and kept."""
        missing = sorted(set(types) - self._types.keys())
        if missing:
            conn = self._connection()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(
                        "SELECT format_type(t.oid, t.mod) FROM unnest(%s::oid[], %s::int4[])"
                        " WITH ORDINALITY AS t(oid, mod, i) ORDER BY t.i",
                        ([oid for oid, _ in missing], [mod for _, mod in missing]),
                    )
                    names = [str(row[0]) for row in cursor.fetchall()]
            except psycopg.Error as e:
                raise postgres_error(e, [self._url.secret()]) from e
            finally:
                self._end_transaction(conn)
            self._types.update(zip(missing, names, strict=True))
        return self._types

    def introspect(self) -> Catalog:
        return read_catalog(self._rows)

    def _rows(self, query: Query, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Rows of one of the engine's own queries, in a read-only transaction of its own."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(query, params or None)
                    return cursor.fetchall()
            except psycopg.Error as e:
                raise postgres_error(e, [self._url.secret()]) from e
            finally:
                self._end_transaction(conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> psycopg.Connection[Row]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._open()
        return self._conn

    def _open(self) -> psycopg.Connection[Row]:
        url = self._url
        options = " ".join(f"-c {k}={v}" for k, v in session_settings(self.limits).items())
        params: dict[str, Any] = {
            "connect_timeout": str(min(10, math.ceil(self.limits.timeout_seconds))),
            "application_name": _APPLICATION_NAME,
        } | url.options
        try:
            conn = psycopg.connect(
                host=url.host,
                port=url.port,
                user=url.user,
                password=url.secret(),
                dbname=url.database,
                options=options,
                autocommit=False,
                **params,
            )
        except psycopg.Error as e:
            error = postgres_error(e, [url.secret()])
            raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None
        # Each transaction psycopg opens is BEGIN READ ONLY.
        conn.read_only = True
        try:
            powers = conn.execute(_POWERS).fetchone()
            conn.rollback()
        except psycopg.Error as e:
            conn.close()
            error = postgres_error(e, [url.secret()])
            raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None
        if powers is not None and powers[0]:
            conn.close()
            raise ConnectionFailedError(
                f"{url}: {url.user or 'this user'} is a superuser or may write server files or "
                "run programs (COPY TO), which a read-only transaction does not stop; "
                "connect as a read-only role"
            )
        return conn

    def _end_transaction(self, conn: psycopg.Connection[Row]) -> None:
        """Roll back whatever the statement did to the session; drop a broken connection."""
        if conn.closed or conn.broken:
            self._conn = None
            return
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()
            self._conn = None


def _fields(result: psycopg.pq.abc.PGresult, encoding: str) -> list[Field]:
    return [
        ((result.fname(i) or b"").decode(encoding), result.ftype(i), result.fmod(i))
        for i in range(result.nfields)
    ]


def _describe(conn: psycopg.Connection[Row], sql: str) -> list[Field]:
    """The result columns of `sql`, from the server's parse of it (a prepared statement is
    described, never executed). The unnamed statement is the one stream() just used."""
    pgconn = conn.pgconn
    prepared = pgconn.prepare(b"", sql.encode(conn.info.encoding))
    if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
        return []
    return _fields(pgconn.describe_prepared(b""), conn.info.encoding)


def connect_postgres(url: DatabaseURL, limits: Limits) -> PostgresEngine:
    return PostgresEngine(url, limits)
