"""ClickHouse through clickhouse-connect: a server over HTTP(S), or chDB in process.

clickhouse-connect drives both: its HTTP client for `clickhouse[s]://` and its chDB backend for
`chdb://` (see chdb.py), so execution, result types, introspection and error mapping are one
code path, and the chDB tests exercise the code that talks to real servers.

Read-only at the database: every statement runs with `readonly=1` (no writes, no DDL, and no
setting changes, so the statement cannot lift its own limits), `max_execution_time`,
`max_result_rows` with `result_overflow_mode='break'` and `max_result_bytes`. Where they come
from depends on the user:

- A user whose profile already says `readonly=1` (the operator's `readonly` user) can change
  no setting: ClickHouse refuses a query that sends any setting with a value other than the
  profile's ("Cannot modify 'max_execution_time' setting in readonly mode").
  clickhouse-connect reads `system.settings` when it connects, which marks the settings the
  user cannot change; `query_settings` sends none of those, and the profile's limits govern
  (the operator renders them). chDB engines are opened this way: the settings are part of the
  chDB connection string, the embedded equivalent of a profile.
- A user who may change settings gets them with every query (HTTP query parameters),
  `readonly=1` among them and last, so the statement's own `SETTINGS` clause can no longer
  loosen them.
- A user who may write but cannot be switched to `readonly=1` (a constraint on `readonly`) is
  refused at connect time: the engine never runs without the database's own guard.

Rows: the stream is read until `max_rows + 1` rows, then closed; `result_overflow_mode =
'break'` stops at whole blocks, so the server may send more than asked and the engine cuts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import clickhouse_connect
import urllib3
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from duet_agents.query.catalog import Catalog
from duet_agents.query.engines.base import Engine, Limits, Result, ResultColumn, cap
from duet_agents.query.engines.clickhouse_catalog import read_catalog
from duet_agents.query.engines.errors import (
    ConnectionFailedError,
    QueryDeniedError,
    QueryError,
    QueryFailedError,
    QueryTimeoutError,
    scrub,
)
from duet_agents.query.engines.urls import DatabaseURL, Scheme
from duet_agents.query.firewall import Dialect

# ClickHouse error codes (src/Common/ErrorCodes.cpp), by what the engine reports.
# TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT, QUERY_WAS_CANCELLED
_TIMEOUT_CODES = frozenset({159, 160, 209, 394})
_DENIED_CODES = frozenset({164, 497, 291})  # READONLY, ACCESS_DENIED, DATABASE_ACCESS_DENIED
_LOGIN_CODES = frozenset({192, 193, 516})  # UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED
# Above max_execution_time, so the server's own limit fires first and says so.
_CLIENT_TIMEOUT_MARGIN_SECONDS = 5


class SettingState(Protocol):
    """A row of system.settings as clickhouse-connect keeps it (`SettingDef`)."""

    @property
    def value(self) -> str: ...

    @property
    def readonly(self) -> int: ...


_RESULT_LIMITS = frozenset({"max_result_rows", "max_result_bytes", "result_overflow_mode"})


def limit_settings(limits: Limits) -> dict[str, str]:
    """The ClickHouse settings that enforce `limits`, `readonly` last (see query_settings)."""
    return {
        "max_execution_time": f"{limits.timeout_seconds:g}",
        # One row more than returned, so the engine can tell a result was cut.
        "max_result_rows": str(limits.max_rows + 1),
        "max_result_bytes": str(limits.max_result_bytes),
        "result_overflow_mode": "break",
        "readonly": "1",
    }


def query_settings(limits: Limits, server: Mapping[str, SettingState]) -> dict[str, str]:
    """The settings to send with each query, given what the user's session already has.

    A setting already at the wanted value, or one the user cannot change (its profile fixed
    it), is left out: sending it would make ClickHouse refuse the query. `readonly` is
    required: a session that may write and cannot be made read-only is refused.
    """
    wanted = limit_settings(limits)
    current = server.get("readonly")
    if current is not None and current.value != "0":
        # readonly=1 or 2 at the session: writes are already refused by the server.
        del wanted["readonly"]
    elif current is not None and current.readonly:
        raise ConnectionFailedError(
            "this ClickHouse user may write and cannot be switched to readonly=1; "
            "connect as a read-only user (profile readonly=1)"
        )
    return {
        name: value
        for name, value in wanted.items()
        if (state := server.get(name)) is None or (state.value != value and not state.readonly)
    }


def clickhouse_error(error: Exception, secrets: Iterable[str | None] = ()) -> QueryError:
    """A clickhouse-connect or chDB exception as a QueryError, by ClickHouse error code first."""
    code = getattr(error, "code", None)
    name = getattr(error, "name", None)
    message = scrub(_shorten(str(error)), secrets)
    label = name or (str(code) if code is not None else None)
    if code in _TIMEOUT_CODES:
        return QueryTimeoutError(message, code=label)
    if code in _DENIED_CODES:
        return QueryDeniedError(message, code=label)
    if code in _LOGIN_CODES:
        return ConnectionFailedError(message, code=label)
    if code is None and isinstance(error, OperationalError):
        if _caused_by(error, urllib3.exceptions.ReadTimeoutError):
            return QueryTimeoutError(f"no answer from ClickHouse in time: {message}")
        return ConnectionFailedError(message)
    return QueryFailedError(message, code=label)


class ClickHouseEngine(Engine):
    """Runs statements through a connected clickhouse-connect client (HTTP or chDB)."""

    dialect = Dialect.CLICKHOUSE

    def __init__(
        self,
        client: Client,
        limits: Limits,
        description: str,
        *,
        catalog_client: Client | None = None,
        secrets: Iterable[str | None] = (),
        preflight: Callable[[Client, str], None] | None = None,
    ) -> None:
        super().__init__(limits, description)
        self._client = client
        # Introspection reads every column of every table: the result limits meant for
        # answers would cut it. chDB fixes settings per connection, so it passes a second one.
        self._catalog_client = catalog_client or client
        self._secrets = tuple(secrets)
        # A check the statement must pass first, on engines whose read-only mode has a gap.
        self._preflight = preflight
        try:
            self._settings = query_settings(limits, client.server_settings)
            self._catalog_settings = {
                k: v
                for k, v in query_settings(limits, self._catalog_client.server_settings).items()
                if k not in _RESULT_LIMITS
            }
        except QueryError:
            self.close()
            raise

    def execute(self, sql: str) -> Result:
        started = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        try:
            if self._preflight is not None:
                self._preflight(self._client, sql)
            with self._client.query_row_block_stream(sql, settings=self._settings) as stream:
                names = stream.source.column_names
                types = stream.source.column_types
                for block in stream:
                    rows.extend(tuple(row) for row in block)
                    if len(rows) > self.limits.max_rows:
                        break
        except ClickHouseError as e:
            raise clickhouse_error(e, self._secrets) from None
        kept, truncated = cap(rows, self.limits.max_rows)
        return Result(
            columns=[ResultColumn(n, t.name) for n, t in zip(names, types, strict=True)],
            rows=kept,
            truncated=truncated,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            sql=sql,
        )

    def introspect(self) -> Catalog:
        try:
            return read_catalog(self._rows, self._catalog_client.database)
        except ClickHouseError as e:
            raise clickhouse_error(e, self._secrets) from None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        result = self._catalog_client.query(sql, settings=self._catalog_settings)
        return [tuple(row) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()
        if self._catalog_client is not self._client:
            self._catalog_client.close()


def connect_clickhouse(url: DatabaseURL, limits: Limits) -> ClickHouseEngine:
    """An engine on a ClickHouse server over HTTP (`clickhouse://`) or HTTPS
    (`clickhouses://`)."""
    secure = url.scheme is Scheme.CLICKHOUSES
    password = url.secret()
    options: dict[str, Any] = {}
    if "verify" in url.options:
        options["verify"] = url.options["verify"].lower() not in ("0", "false", "no", "off")
    if "ca_cert" in url.options:
        options["ca_cert"] = url.options["ca_cert"]
    try:
        client = clickhouse_connect.get_client(
            host=url.host,
            port=url.port,
            username=url.user or "default",
            password=password or "",
            database=url.database,
            interface="https" if secure else "http",
            secure=secure,
            connect_timeout=min(10, int(limits.timeout_seconds) + 1),
            send_receive_timeout=int(limits.timeout_seconds) + _CLIENT_TIMEOUT_MARGIN_SECONDS,
            query_limit=0,
            # One server session per client would refuse concurrent queries from the query
            # server's threads ("session is locked"); nothing here needs session state.
            autogenerate_session_id=False,
            **options,
        )
    except ClickHouseError as e:
        error = clickhouse_error(e, [password])
        raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None
    return ClickHouseEngine(client, limits, url.redacted(), secrets=[password])


def _shorten(message: str, limit: int = 2000) -> str:
    return message.strip()[:limit]


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
