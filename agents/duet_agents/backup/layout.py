"""Where a backup lives: `<prefix>/<platform>/<stamp>/<component>`.

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
