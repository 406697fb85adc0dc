"""PostgreSQL base backups with pg_basebackup, and how one becomes a data directory again.

The backup is tar format, gzip-compressed, with the WAL needed to make it consistent
streamed alongside (`--wal-method=stream`): `base.tar.gz` and `pg_wal.tar.gz`, plus the
`backup_manifest` that `pg_verifybackup` checks. A server started on the restored directory
replays that WAL and opens read-write at the point the backup ended; no WAL archive is needed
for that. The WAL archived since (wal.py) then takes a restore past it, to the archive's end.
"""

from __future__ import annotations

import shlex
from typing import Final

BASE_ARCHIVE: Final = "base.tar.gz"
WAL_ARCHIVE: Final = "pg_wal.tar.gz"


def basebackup_args(
    *, host: str, port: int, user: str, directory: str | None, label: str = "duet"
) -> list[str]:
    """The pg_basebackup command line. The password comes from PGPASSWORD (a Secret in the
    Job), never the command line; `--no-password` makes a missing one fail instead of hang.
    With `directory` None, the caller appends `--pgdata` (a path known only at run time)."""
    return [
        "pg_basebackup",
        f"--host={host}",
        f"--port={port}",
        f"--username={user}",
        *([f"--pgdata={directory}"] if directory is not None else []),
        "--format=tar",
        "--compress=gzip",
        "--wal-method=stream",
        # An immediate checkpoint: the backup starts now rather than at the next scheduled one.
        "--checkpoint=fast",
        f"--label={label}",
        "--no-password",
    ]


def restore_script(backup_dir: str, pgdata: str) -> str:
    """A POSIX shell script that unpacks a backup into an empty data directory, ready for
    `postgres -D pgdata`."""
    backup = shlex.quote(backup_dir)
    data = shlex.quote(pgdata)
    return "\n".join(
        [
            "set -eu",
            f"mkdir -p {data}",
            f'if [ -n "$(ls -A {data})" ]; then echo "{pgdata} is not empty" >&2; exit 1; fi',
            f"chmod 0700 {data}",
            f"tar -xzf {backup}/{BASE_ARCHIVE} -C {data}",
            f"tar -xzf {backup}/{WAL_ARCHIVE} -C {data}/pg_wal",
            "",
        ]
    )
