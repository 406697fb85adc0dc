"""ClickHouse's own BACKUP and RESTORE statements, built rather than formatted by hand.

A statement names what to copy and where, but never the run's location or any credential:
- the location (`<platform>/<stamp>/clickhouse`) is the query parameter `{location:String}`,
  bound by the client (`clickhouse-client --param_location=...`), so one statement serves
  every run and no value is spliced into SQL;
- S3 credentials stay in the server's configuration, as the named collection
  `BACKUP_COLLECTION` (endpoint, bucket and prefix as its url, the keys read from the
  server's environment with `from_env`). `S3(duet_backups, {location:String})` then carries
  nothing secret into query_log, server logs or the Job's own log. (ClickHouse does mask keys
  written inline as `S3(url, key, secret)` in its logs, but the client, the Job spec and any
  error message would still hold them.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlglot import exp

LOCATION_PARAMETER: Final = "location"
BACKUP_COLLECTION: Final = "duet_backups"
# Never copied: they are the server's own, rebuilt at start.
SYSTEM_DATABASES: Final = ("system", "INFORMATION_SCHEMA", "information_schema")

_LOCATION = f"{{{LOCATION_PARAMETER}:String}}"
_SIZE_QUERY = (
    "SELECT total_size FROM system.backups WHERE status = 'BACKUP_CREATED'"
    " AND position(name, {location:String}) > 0 ORDER BY start_time DESC LIMIT 1"
)


@dataclass(frozen=True)
class FileDestination:
    """A path on the server's filesystem, under `backups.allowed_path` (the location is the
    full path)."""

    def sql(self) -> str:
        return f"File({_LOCATION})"


@dataclass(frozen=True)
class DiskDestination:
    """A disk of the server's storage configuration listed in `backups.allowed_disk`."""

    disk: str

    def sql(self) -> str:
        return f"Disk({_string(self.disk)}, {_LOCATION})"


@dataclass(frozen=True)
class S3Destination:
    """A key prefix under the url of a named collection in the server's configuration."""

    collection: str = BACKUP_COLLECTION

    def sql(self) -> str:
        return f"S3({_identifier(self.collection)}, {_LOCATION})"


Destination = FileDestination | DiskDestination | S3Destination


def backup_statement(
    destination: Destination, *, databases: Sequence[str] = (), on_cluster: str | None = None
) -> str:
    """Every database but the system ones (or just `databases`), to `destination`. With
    `on_cluster`, each shard is copied once, by one of its replicas, into one backup: the
    destination must then be shared by the servers (S3, or a volume they all mount)."""
    return f"BACKUP {_scope(databases)}{_cluster(on_cluster)} TO {destination.sql()}"


def restore_statement(
    source: Destination, *, databases: Sequence[str] = (), on_cluster: str | None = None
) -> str:
    """The inverse of `backup_statement`, into a server where those databases' tables do not
    exist yet (a new platform)."""
    return f"RESTORE {_scope(databases)}{_cluster(on_cluster)} FROM {source.sql()}"


def size_query() -> str:
    """The size of the backup just taken at `{location:String}`, as the server that ran it
    recorded it; run in the same session as the BACKUP (system.backups is per server)."""
    return _SIZE_QUERY


def _scope(databases: Sequence[str]) -> str:
    if databases:
        return ", ".join(f"DATABASE {_identifier(name)}" for name in databases)
    return "ALL EXCEPT DATABASES " + ", ".join(_identifier(name) for name in SYSTEM_DATABASES)


def _cluster(name: str | None) -> str:
    return f" ON CLUSTER {_identifier(name)}" if name else ""


def _identifier(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="clickhouse")


def _string(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="clickhouse")
