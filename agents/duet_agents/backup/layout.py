"""Where a backup lives: `<prefix>/<platform>/<stamp>/<component>`, and PostgreSQL's WAL
archive beside the runs, `<prefix>/<platform>/wal/` (`wal_directory`; not a stamp, so nothing
that deletes runs can take it).

One directory (or S3 key prefix) per run and component, named by the UTC time the run
started, so listing a platform's directory lists its backups in time order and retention can
tell their age from the name alone. The stamp format is also a valid `date +FORMAT`, which is
how the scheduled Job, that learns its start time only when it runs, names its directory.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Final

STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
WAL: Final = "wal"


class Component(enum.StrEnum):
    CLICKHOUSE = "clickhouse"
    POSTGRES = "postgres"


def stamp(moment: datetime) -> str:
    """`2025-03-01 02:00:00+00:00` -> `20250301T020000Z`. A naive time is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The inverse of `stamp`; raises ValueError on anything else."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def platform_prefix(prefix: str, platform: str) -> str:
    """Every backup of one platform lives under this; `prefix` may be empty."""
    parts = [part for part in prefix.split("/") if part]
    return "/".join([*parts, platform])


def location(platform_dir: str, run_stamp: str, component: Component) -> str:
    return f"{platform_dir}/{run_stamp}/{component.value}"


def wal_directory(platform_dir: str) -> str:
    """The platform's WAL archive (duet_agents.backup.wal), beside its runs."""
    return f"{platform_dir}/{WAL}"


def run_directory(path: str, platform_dir: str) -> str:
    """`path` when it names exactly one run of the platform, `<platform_dir>/<stamp>`, with
    a stamp as `stamp` writes it; ValueError otherwise. What retention deletes comes from a
    record's status, which anyone allowed to edit it can set: nothing but a run's own
    directory may pass (no `..`, no absolute path, nothing above or beside the run)."""
    platform_parts = platform_dir.split("/")
    if not platform_dir or any(_unsafe(part) for part in platform_parts):
        raise ValueError(f"{platform_dir!r} is not a platform's backup directory")
    parent, _, run = path.rpartition("/")
    if parent != platform_dir:
        raise ValueError(f"{path!r} is not a run directory under {platform_dir}/")
    try:
        well_formed = stamp(parse_stamp(run)) == run
    except ValueError:
        well_formed = False
    if not well_formed:
        raise ValueError(f"{path!r} does not end in a run's stamp (like 20250301T020000Z)")
    return path


def _unsafe(segment: str) -> bool:
    # `..` anywhere, not only as a whole segment: the cleanup step refuses any, as a second
    # guard that does not depend on this one.
    return not segment or segment == "." or ".." in segment
