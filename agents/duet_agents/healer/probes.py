"""Database probes: what ClickHouse and PostgreSQL say about their disks and replication.

The rest of the healer is pure; this module is its one door to the databases, and the
operator calls it once per healer pass with the platform's servers as `ProbeTarget`s:

    readings = await probe_all(targets, timeout=5)
    Observation(..., volumes=readings.volumes, clickhouse_replicas=..., probes=readings.probes)

- ClickHouse, per server: `system.disks` (local disks) -> `VolumeUsage`, `system.replicas` ->
  `ClickHouseReplica`, through the query engines (`duet_agents.query.engines`), so `chdb://`
  and `clickhouse://` are one code path and every statement runs with `readonly=1`.
- PostgreSQL, per server, whatever role the operator believes it has: the server says whether
  it is in recovery. A primary reports each standby's replay position in
  `pg_stat_replication` (bytes behind, named by the standby's `application_name`, else
  matched by its address); a standby reports how old its last replayed transaction is
  (seconds), or 0 when it streams and has replayed all it received (an idle primary writes
  nothing, and `now() - pg_last_xact_replay_timestamp()` would grow without any lag). The two
  are merged into one `PostgresLag` per standby. psycopg's async driver, read-only session.
- PostgreSQL's WAL archive spool, on the primary only (standbys do not archive), when the
  target names one (`ProbeTarget.wal_spool`): how many WAL files wait there for the
  `wal-archiver` sidecar, and how old the oldest is (`WalSpool`). `pg_stat_archiver` cannot
  say it: the archive command only spools locally, so it succeeds while uploads fail.

Every server is probed concurrently and bounded by `timeout`. A server that does not answer
costs only its own readings: it is named in `ProbesReachable.unreachable_pods` (or, when no
server of its kind answered, the component is unreachable) with a short error that carries no
password and no credentials of its URL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from duet_agents.healer.evidence import clip
from duet_agents.healer.observations import (
    MAX_PROBE_ERROR_CHARS,
    ClickHouseReplica,
    Component,
    LogExcerpt,
    PostgresLag,
    ProbesReachable,
    VolumeUsage,
)
from duet_agents.query.engines import Limits, QueryError, connect
from duet_agents.query.engines.errors import scrub
from duet_agents.query.engines.urls import DatabaseURL, Scheme, redact

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 8
APPLICATION_NAME = "duet-probe"
# A platform has a handful of disks per server; a server with hundreds of replicated tables
# still has every one looked at, but not without end.
MAX_DISKS = 64
MAX_REPLICAS = 10_000

# Object-storage disks (S3, ...) report no meaningful free space.
DISKS_SQL = "SELECT name, free_space, total_space FROM system.disks WHERE NOT is_remote"
REPLICAS_SQL = (
    "SELECT database, table, is_readonly, is_session_expired, absolute_delay, queue_size"
    " FROM system.replicas ORDER BY database, table"
)
RECOVERY_SQL = "SELECT pg_is_in_recovery()"
# Replay position, not flush: what readers of the standby see, and the larger (safer) figure.
SENDERS_SQL = """
SELECT application_name, host(client_addr),
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
FROM pg_stat_replication
"""
STANDBY_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
       pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
"""

# The spool: `<spool>/<system identifier>/<WAL file>` (duet_agents.backup.wal). Its files
# counted, and the age of the oldest by its mtime (the archive command's copy made it, so it
# is when the file was spooled). Hidden names are the archive command's files in the making.
# An entry is listed as a directory only once pg_stat_file says it is one, and anything gone
# between the listing and the look (the sidecar deleting what it moved) is skipped
# (missing_ok), not an error. pg_ls_dir and pg_stat_file are the superuser's by default; a
# path outside the data directory also takes pg_read_server_files (docs/probes.md).
SPOOL_SQL = """
WITH spool AS MATERIALIZED (
  SELECT %(spool)s::text AS dir,
         (pg_stat_file(%(spool)s::text, true)).isdir IS TRUE AS present
), systems AS MATERIALIZED (
  SELECT spool.dir || '/' || entry AS dir
  FROM spool, pg_ls_dir(spool.dir, true, false) AS entry
  WHERE spool.present AND (pg_stat_file(spool.dir || '/' || entry, true)).isdir IS TRUE
), files AS (
  SELECT stat.modification
  FROM systems, pg_ls_dir(systems.dir, true, false) AS entry,
       pg_stat_file(systems.dir || '/' || entry, true) AS stat
  WHERE left(entry, 1) <> '.' AND stat.isdir IS FALSE
)
SELECT (SELECT present FROM spool), count(*),
       extract(epoch FROM now() - min(modification))::float8
FROM files
"""

Row = Sequence[Any]


class ProbeTarget(BaseModel):
    """One database server to probe: the pod it runs in, and how to reach it. The URL carries
    the credentials (as a SecretStr), so neither a repr nor a message shows the password."""

    model_config = ConfigDict(frozen=True)

    pod: str
    component: Component
    url: DatabaseURL
    address: str | None = Field(
        default=None,
        description="The pod's IP: a standby whose application_name is not its pod name is"
        " recognised in pg_stat_replication by this.",
    )
    wal_spool: str | None = Field(
        default=None,
        description="PostgreSQL's WAL archive spool directory, as the server resolves it"
        " (relative to its data directory, or absolute), read when the server is the"
        " primary. None: the platform does not archive, nothing to read.",
    )


class WalSpool(BaseModel):
    """The WAL files a PostgreSQL primary's archive command has spooled and the
    `wal-archiver` sidecar has not moved to the backup target yet."""

    model_config = ConfigDict(frozen=True)

    pod: str
    files: int = Field(ge=0)
    oldest_seconds: float | None = Field(
        default=None, ge=0, description="Age of the oldest spooled file; None when none waits."
    )


class ProbeReadings(BaseModel):
    """What the probes add to an `Observation`: its fields of the same names."""

    model_config = ConfigDict(frozen=True)

    volumes: list[VolumeUsage] = Field(default_factory=list)
    clickhouse_replicas: list[ClickHouseReplica] = Field(default_factory=list)
    postgres_lag: list[PostgresLag] = Field(default_factory=list)
    logs: list[LogExcerpt] = Field(default_factory=list)
    probes: ProbesReachable = Field(default_factory=ProbesReachable)
    # Not part of an Observation (no symptom reads it yet): the operator's metrics do.
    wal_spool: list[WalSpool] = Field(default_factory=list)


class WalSender(BaseModel):
    """A row of the primary's `pg_stat_replication`."""

    model_config = ConfigDict(frozen=True)

    application_name: str
    address: str | None = None
    bytes_behind: int | None = None


class ServerReading(BaseModel):
    """What one server said, or why it said nothing (`error`)."""

    model_config = ConfigDict(frozen=True)

    pod: str
    component: Component
    address: str | None = None
    volumes: list[VolumeUsage] = Field(default_factory=list)
    replicas: list[ClickHouseReplica] = Field(default_factory=list)
    in_recovery: bool | None = None
    senders: list[WalSender] = Field(default_factory=list)
    standby_seconds: float | None = None
    wal_spool: WalSpool | None = None
    error: str | None = None


# -- pure: rows -> readings ----------------------------------------------------------------------


def volume_usage(pod: str, rows: Iterable[Row]) -> list[VolumeUsage]:
    """`system.disks` rows (name, free_space, total_space) as readings; a disk that reports
    no size (total 0) says nothing about fullness and is left out."""
    found = [
        VolumeUsage(pod=pod, disk=str(name), free_bytes=int(free), total_bytes=int(total))
        for name, free, total in rows
        if int(total) > 0
    ]
    return sorted(found, key=lambda v: v.disk)[:MAX_DISKS]


def replica_rows(pod: str, rows: Iterable[Row]) -> list[ClickHouseReplica]:
    """`system.replicas` rows (database, table, is_readonly, is_session_expired,
    absolute_delay, queue_size) as readings."""
    return [
        ClickHouseReplica(
            pod=pod,
            database=str(database),
            table=str(table),
            is_readonly=bool(readonly),
            is_session_expired=bool(expired),
            absolute_delay=max(0, int(delay)),
            queue_size=max(0, int(queue)),
        )
        for database, table, readonly, expired, delay, queue in rows
    ][:MAX_REPLICAS]


def wal_senders(rows: Iterable[Row]) -> list[WalSender]:
    """`pg_stat_replication` rows (application_name, client address, bytes behind)."""
    return [
        WalSender(
            application_name=str(name or ""),
            address=str(address) if address else None,
            bytes_behind=None if behind is None else max(0, int(behind)),
        )
        for name, address, behind in rows
    ]


def standby_seconds(streaming: bool, caught_up: bool, replay_age: float | None) -> float | None:
    """How far a standby is behind in time. A standby that streams and has replayed all it
    received is current, however long ago the primary last wrote; otherwise the age of its
    last replayed transaction (None when it has replayed none since it started)."""
    if streaming and caught_up:
        return 0.0
    if replay_age is None or math.isnan(replay_age):
        return None
    return max(0.0, replay_age)


def wal_spool(pod: str, row: Row | None) -> WalSpool | None:
    """SPOOL_SQL's row (spool present, files, age of the oldest in seconds) as a reading; no
    spool directory (yet) is no reading."""
    if row is None or not row[0]:
        return None
    files, age = int(row[1] or 0), row[2]
    oldest = None if files == 0 or age is None or math.isnan(age) else max(0.0, float(age))
    return WalSpool(pod=pod, files=files, oldest_seconds=oldest)


def merge_lag(readings: Sequence[ServerReading]) -> list[PostgresLag]:
    """One entry per standby: bytes from the primary's view of it, seconds from its own.

    A standby is a PostgreSQL server that answered as in recovery, or one the primary reports
    streaming to it (by application_name = pod name, else by address); walsenders that match
    no pod of the platform (a backup tool, say) are left out.
    """
    postgres = [r for r in readings if r.component is Component.POSTGRES]
    by_name = {r.pod: r for r in postgres}
    by_address = {r.address: r.pod for r in postgres if r.address}
    reported: dict[str, list[int | None]] = {}
    for reading in postgres:
        if reading.in_recovery is not False:
            continue
        for sender in reading.senders:
            pod = (
                sender.application_name
                if sender.application_name in by_name
                else by_address.get(sender.address or "")
            )
            if pod is not None and pod != reading.pod:
                reported.setdefault(pod, []).append(sender.bytes_behind)
    # Two walsenders for one standby (a reconnect not yet noticed): the one further behind.
    behind = {
        pod: max((b for b in found if b is not None), default=None)
        for pod, found in reported.items()
    }
    standbys = {r.pod for r in postgres if r.in_recovery} | behind.keys()
    return [
        PostgresLag(
            standby=pod,
            bytes=behind.get(pod),
            seconds=by_name[pod].standby_seconds if pod in by_name else None,
        )
        for pod in sorted(standbys)
    ]


def reachability(readings: Sequence[ServerReading]) -> ProbesReachable:
    """Per component: None when nothing was probed, False with an error when no server
    answered, True when one did (the silent ones named in `unreachable_pods`)."""
    fields: dict[str, Any] = {"unreachable_pods": []}
    for component, name in ((Component.CLICKHOUSE, "clickhouse"), (Component.POSTGRES, "postgres")):
        mine = sorted((r for r in readings if r.component is component), key=lambda r: r.pod)
        if not mine:
            continue
        failed = [r for r in mine if r.error is not None]
        fields[name] = len(failed) < len(mine)
        if failed:
            fields[f"{name}_error"] = clip(
                "; ".join(f"{r.pod}: {r.error}" for r in failed), MAX_PROBE_ERROR_CHARS
            )
        if fields[name]:
            fields["unreachable_pods"] += [r.pod for r in failed]
    return ProbesReachable.model_validate(fields)


def readings_of(results: Sequence[ServerReading]) -> ProbeReadings:
    ordered = sorted(results, key=lambda r: r.pod)
    return ProbeReadings(
        volumes=[v for r in ordered for v in r.volumes],
        clickhouse_replicas=[row for r in ordered for row in r.replicas],
        postgres_lag=merge_lag(ordered),
        probes=reachability(ordered),
        wal_spool=[r.wal_spool for r in ordered if r.wal_spool is not None],
    )


def safe_error(error: BaseException, url: DatabaseURL, timeout: float) -> str:
    """A short account of a failed probe without the password or the URL's credentials: the
    socket's own words where the connection failed (drivers wrap them in a paragraph each),
    else the first line of the driver's message."""
    root = _socket_error(error)
    if isinstance(error, TimeoutError):
        text = f"no answer within {timeout:g} s"
    elif root is not None:
        text = f"cannot connect to {url.host}:{url.port}: {root.strerror or root}"
    else:
        message = error.message if isinstance(error, QueryError) else str(error)
        text = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    # Drivers may echo a connection string; the clip also drops `password=...` values.
    return clip(redact(scrub(text, [url.secret()])), MAX_PROBE_ERROR_CHARS)


def _socket_error(error: BaseException) -> OSError | None:
    """The innermost OSError among the causes (refused, unresolvable, unreachable), if any."""
    found: OSError | None = None
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


def _who(target: ProbeTarget) -> dict[str, Any]:
    return {"pod": target.pod, "component": target.component, "address": target.address}


# -- I/O -------------------------------------------------------------------------------------------


def _clickhouse(target: ProbeTarget, timeout: float) -> ServerReading:
    # Engines are synchronous (see query/engines/base.py); the caller runs this in a thread.
    limits = Limits(timeout_seconds=timeout, max_rows=MAX_REPLICAS)
    with connect(target.url, limits=limits) as engine:
        disks = engine.execute(DISKS_SQL).rows
        replicas = engine.execute(REPLICAS_SQL).rows
    return ServerReading(
        **_who(target),
        volumes=volume_usage(target.pod, disks),
        replicas=replica_rows(target.pod, replicas),
    )


async def _postgres(target: ProbeTarget, timeout: float) -> ServerReading:
    url = target.url
    timeout_ms = math.ceil(timeout * 1000)
    params: dict[str, Any] = {
        "connect_timeout": str(max(1, math.ceil(timeout))),
        "application_name": APPLICATION_NAME,
    } | url.options
    conn = await psycopg.AsyncConnection.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.secret(),
        dbname=url.database or "postgres",
        options=f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
        autocommit=True,
        **params,
    )
    async with conn:
        row = await (await conn.execute(RECOVERY_SQL)).fetchone()
        in_recovery = bool(row and row[0])
        if not in_recovery:
            rows = await (await conn.execute(SENDERS_SQL)).fetchall()
            spool = await _spool(conn, target) if target.wal_spool is not None else None
            return ServerReading(
                **_who(target), in_recovery=False, senders=wal_senders(rows), wal_spool=spool
            )
        row = await (await conn.execute(STANDBY_SQL)).fetchone()
    streaming, caught_up, age = row if row else (False, False, None)
    return ServerReading(
        **_who(target),
        in_recovery=True,
        standby_seconds=standby_seconds(bool(streaming), bool(caught_up), age),
    )


async def _spool(conn: psycopg.AsyncConnection[Any], target: ProbeTarget) -> WalSpool | None:
    """The spool's reading. A refusal (a probe user without the functions or the path, or a
    directory the server's user may not read) costs only this reading, not the server's
    others."""
    try:
        cursor = await conn.execute(SPOOL_SQL, {"spool": target.wal_spool})
    except psycopg.errors.InsufficientPrivilege:
        return None
    return wal_spool(target.pod, await cursor.fetchone())


async def probe(target: ProbeTarget, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> ServerReading:
    """One server's readings, or its error; never raises for a database that fails."""
    try:
        async with asyncio.timeout(timeout):
            if target.url.scheme is Scheme.POSTGRESQL:
                return await _postgres(target, timeout)
            # The thread may outlive the deadline by the engine's own timeouts (its connect and
            # read timeouts are derived from the same `timeout`), never longer.
            return await asyncio.to_thread(_clickhouse, target, timeout)
    except (TimeoutError, QueryError, psycopg.Error, OSError) as e:
        return ServerReading(**_who(target), error=safe_error(e, target.url, timeout))


async def probe_each(
    targets: Iterable[ProbeTarget],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[ServerReading]:
    """Probe every target, at most `concurrency` at once, each within `timeout` seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(target: ProbeTarget) -> ServerReading:
        async with gate:
            return await probe(target, timeout)

    return list(await asyncio.gather(*(bounded(t) for t in targets)))


async def probe_all(
    targets: Iterable[ProbeTarget],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ProbeReadings:
    """`probe_each`, merged into the readings of an Observation."""
    return readings_of(await probe_each(targets, timeout=timeout, concurrency=concurrency))


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "ProbeReadings",
    "ProbeTarget",
    "ServerReading",
    "WalSender",
    "WalSpool",
    "merge_lag",
    "probe",
    "probe_all",
    "probe_each",
    "reachability",
    "readings_of",
    "replica_rows",
    "safe_error",
    "standby_seconds",
    "volume_usage",
    "wal_senders",
    "wal_spool",
]
