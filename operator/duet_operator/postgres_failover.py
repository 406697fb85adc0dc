"""Promoting a PostgreSQL standby from the operator: `pg_promote()` over a superuser session.

The pods' entrypoint also promotes the instance `status.postgresPrimary` names when it starts
(render/postgres.py). Doing it here as well means a failover does not wait for the
StatefulSet to roll its pods, which, under OrderedReady, never gets past a broken pod 0: the
very pod a failover is about.
"""

from __future__ import annotations

import asyncio

import psycopg

from duet_agents.query.engines.urls import DatabaseURL

# Long enough for a standby to finish replaying what it has received.
PROMOTE_WAIT_SECONDS = 60


class PromotionError(Exception):
    """The standby could not be promoted; the message names no password."""


async def promote(url: DatabaseURL, *, connect_timeout: float = 5) -> bool:
    """Promote the server at `url` and wait until it is a primary. False when it already was
    one (promoted before, by us or by its entrypoint), so that a repeat changes nothing."""
    try:
        async with asyncio.timeout(connect_timeout + PROMOTE_WAIT_SECONDS + 5):
            return await _promote(url, connect_timeout)
    except TimeoutError:
        raise PromotionError(f"{url.host} did not answer in time") from None
    except psycopg.Error as e:
        # psycopg's messages name host, port and user, never the password.
        first = (str(e).strip().splitlines() or [""])[0]
        raise PromotionError(f"{type(e).__name__}: {first}") from None


async def _promote(url: DatabaseURL, connect_timeout: float) -> bool:
    connection = await psycopg.AsyncConnection.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.secret(),
        dbname=url.database or "postgres",
        connect_timeout=max(1, int(connect_timeout)),
        autocommit=True,
    )
    async with connection:
        cursor = await connection.execute("SELECT pg_is_in_recovery()")
        row = await cursor.fetchone()
        if not (row and row[0]):
            return False
        cursor = await connection.execute("SELECT pg_promote(true, %s)", (PROMOTE_WAIT_SECONDS,))
        row = await cursor.fetchone()
        if not (row and row[0]):
            raise PromotionError(f"the promotion did not finish within {PROMOTE_WAIT_SECONDS} s")
        return True
