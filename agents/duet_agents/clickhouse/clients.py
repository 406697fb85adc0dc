"""Clients that may change a host's schema: the operator's, as the platform's admin user.

The query engines (`duet_agents.query.engines`) are read-only by construction; a schema
replay creates databases and tables, so it has clients of its own, with a bound on every
call so that one host that hangs cannot hold a reconcile.
"""

from __future__ import annotations

from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from duet_agents.query.engines.urls import DatabaseURL, Scheme


def admin_client(url: DatabaseURL, *, timeout_seconds: float) -> Client:
    """A clickhouse-connect client on `url` (clickhouse://, clickhouses:// or chdb://), as
    the URL's user. Blocking: call it from a worker thread. Raises clickhouse-connect's
    errors, whose text never holds the password (it travels in a header), or ValueError for
    a URL that is not ClickHouse's."""
    if url.scheme is Scheme.CHDB:
        if url.path is not None and not Path(url.path).is_dir():
            raise ValueError(f"{url}: no chDB data directory at {url.path}")
        return clickhouse_connect.get_client(interface="chdb", path=url.path, query_limit=0)
    if url.scheme not in (Scheme.CLICKHOUSE, Scheme.CLICKHOUSES):
        raise ValueError(f"{url.redacted()}: not a ClickHouse URL")
    secure = url.scheme is Scheme.CLICKHOUSES
    seconds = max(1, int(timeout_seconds))
    return clickhouse_connect.get_client(
        host=url.host,
        port=url.port,
        username=url.user or "default",
        password=url.secret() or "",
        interface="https" if secure else "http",
        secure=secure,
        connect_timeout=seconds,
        send_receive_timeout=seconds,
        query_limit=0,
        autogenerate_session_id=False,
    )
