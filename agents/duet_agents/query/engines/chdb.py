"""Embedded ClickHouse (chDB): `chdb:///path/to/data` or `chdb://` for an in-memory engine.

chDB runs ClickHouse inside this process. The engine reaches it through clickhouse-connect's
chDB backend, the same client API the server engine uses (clickhouse.py), over connections of
its own whose connection strings carry `readonly=1` and the limits: chDB applies those options
as that connection's settings, the embedded counterpart of a read-only profile, and other
connections to the same data (an admin preparing it, say) keep their own. A second read-only
connection, without the result limits, serves introspection.

Two properties of chDB shape this module:
- One data directory per process. Connections to the same path coexist; opening another path
  while one is open fails, and the error says which path holds the engine.
- `readonly=1` does not stop `SELECT ... INTO OUTFILE`: chDB is clickhouse-local, where the
  client writes the result to a file on this machine. A ClickHouse server refuses it over
  HTTP; here the engine asks chDB's own parser (`formatQuery`) how it reads the statement and
  refuses one that writes a file, before running it.
"""

from __future__ import annotations

import re
from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from duet_agents.query.engines.base import Limits
from duet_agents.query.engines.clickhouse import (
    ClickHouseEngine,
    clickhouse_error,
    limit_settings,
)
from duet_agents.query.engines.errors import (
    ConnectionFailedError,
    InvalidURLError,
    QueryDeniedError,
)
from duet_agents.query.engines.urls import DatabaseURL

# formatQuery prints the clause at the start of a line; literals and names cannot hold a raw
# newline in its output (it escapes them), so this matches the clause and nothing else.
_INTO_OUTFILE = re.compile(r"^\s*INTO OUTFILE\b", re.MULTILINE)


def refuse_outfile(client: Client, sql: str) -> None:
    """Raise QueryDeniedError when chDB would write the result of `sql` to a file."""
    formatted = client.query("SELECT formatQuery({sql:String})", parameters={"sql": sql})
    if _INTO_OUTFILE.search(str(formatted.result_rows[0][0])):
        raise QueryDeniedError(
            "INTO OUTFILE writes a file on this machine; the engine is read-only",
            code="INTO_OUTFILE_NOT_ALLOWED",
        )


def connect_chdb(url: DatabaseURL, limits: Limits) -> ClickHouseEngine:
    if url.path is not None and not Path(url.path).is_dir():
        raise InvalidURLError(f"{url}: no chDB data directory at {url.path}")
    settings = limit_settings(limits)
    catalog_settings = {k: settings[k] for k in ("max_execution_time", "readonly")}
    clients: list[Client] = []
    try:
        for options in (settings, catalog_settings):
            clients.append(
                clickhouse_connect.get_client(
                    interface="chdb",
                    path=url.path,
                    database=url.database,
                    chdb_options=options,
                    query_limit=0,
                )
            )
    except ImportError:
        # chDB is an optional extra (a 200 MB engine the operator image does without).
        raise ConnectionFailedError(
            "chdb:// needs the chdb package: pip install 'duet[chdb]'"
        ) from None
    except ClickHouseError as e:
        for client in clients:
            client.close()
        error = clickhouse_error(e)
        raise ConnectionFailedError(f"{url}: {error.message}", code=error.code) from None
    query_client, catalog_client = clients
    return ClickHouseEngine(
        query_client,
        limits,
        url.redacted(),
        catalog_client=catalog_client,
        preflight=refuse_outfile,
    )
