"""A real streaming standby of a test PostgreSQL server (tests/support/postgres.py).

`pg_basebackup --write-recovery-conf` clones the running primary into a second data directory,
which starts on a port of its own as the same unprivileged user and streams from the primary,
as the operator's standby pods do. Its `cluster_name` is the "pod" name: the walreceiver
reports it to the primary as its `application_name`, which is how `pg_stat_replication` names
the standby.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.postgres import (
    SUPERUSER,
    PostgresServer,
    _as_server_user,
    _stop,
    start_postgres,
)
from tests.support.wait import wait_until


@dataclass
class Standby:
    """A running standby: a PostgresServer (same superuser and password) plus its name."""

    name: str
    server: PostgresServer
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self) -> None:
        """Stop the server now (its files go when the context ends)."""
        _stop(self.process)


def streaming(primary: PostgresServer, name: str) -> bool:
    """Whether the primary has a walsender streaming to the standby called `name`."""
    with primary.admin() as conn:
        row = conn.execute(
            "SELECT state FROM pg_stat_replication WHERE application_name = %s", (name,)
        ).fetchone()
    return row is not None and row[0] == "streaming"


@contextlib.contextmanager
def running_standby(primary: PostgresServer, name: str) -> Iterator[Standby]:
    """Clone `primary`, start the clone as a hot standby named `name`, wait until it streams,
    yield it, then stop it and remove its files."""
    prefix, uid, gid = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="duet-pg-standby-"))
    process: subprocess.Popen[bytes] | None = None
    log_path = base / "server.log"
    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        data = base / "data"
        env = primary.client_env()
        subprocess.run(
            [
                *prefix,
                str(primary.bin_dir / "pg_basebackup"),
                f"--pgdata={data}",
                f"--host={primary.host}",
                f"--port={primary.port}",
                f"--username={SUPERUSER}",
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        process, port = start_postgres(
            primary.bin_dir,
            data,
            base,
            log_path,
            prefix,
            hot_standby="on",
            cluster_name=name,
            # Frequent status messages keep pg_stat_replication's replay position fresh.
            wal_receiver_status_interval="1s",
        )
        server = PostgresServer("127.0.0.1", port, primary.password, primary.bin_dir, base)
        standby = Standby(name, server, process)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the standby exited with {process.returncode} while starting")
            return streaming(primary, name)

        try:
            wait_until(
                ready,
                timeout=60,
                what=f"standby {name} on port {port} to stream from the primary",
                ignore=(psycopg.OperationalError,),
            )
        except (AssertionError, RuntimeError) as e:
            said = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{e}\n--- the standby's log ---\n{said}") from None
        yield standby
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"pg_basebackup failed: {e.stderr.decode(errors='replace')}") from None
    finally:
        if process is not None and process.poll() is None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)
