"""The operator's PostgreSQL pods, as processes: the rendered entrypoint script and config,
run by `sh` with Debian's PostgreSQL binaries, one data directory and port per "pod".

The image's `docker-entrypoint.sh` is stood in for by a shim that does what Duet relies on it
for: initialise an empty PGDATA with the superuser's password, run the init scripts (our
`init-roles.sh`), then exec the server. Everything else is the script the pods run, so a
promotion, a rewind and a clone happen here as they would in the cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from duet_operator.render import postgres
from tests.support.operator import free_port
from tests.support.postgres import SUPERUSER, PostgresServer, _as_server_user
from tests.support.wait import wait_until

SHIM = """#!/bin/sh
set -eu
[ "$1" = postgres ] && shift
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(dirname "$PGDATA")/initdb-password"
  (umask 077 && printf '%s\\n' "$POSTGRES_PASSWORD" >"$pwfile")
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \\
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync \\
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm "$pwfile"
  pg_ctl --pgdata="$PGDATA" --wait --silent \\
    -o "-c listen_addresses='' -c unix_socket_directories=$SOCKET_DIR" start
  PGHOST="$SOCKET_DIR" sh "$CONFIG_DIR/init-roles.sh"
  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
fi
exec postgres "$@"
"""


@dataclass
class Pod:
    """One instance: its ordinal, port and files, and the process while it runs."""

    ordinal: int
    port: int
    base: Path
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"pg-{self.ordinal}"

    @property
    def data(self) -> Path:
        return self.base / "pgdata"


@dataclass
class PostgresPods:
    """A StatefulSet's worth of pods sharing one config directory and one set of passwords."""

    root: Path
    bin_dir: Path
    passwords: dict[str, str]
    pods: list[Pod]
    # The StatefulSet's, unless a test wants another (a cluster made before it had them).
    initdb_args: str = "--data-checksums"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    def start(self, ordinal: int, primary: int) -> Pod:
        """Run the entrypoint of pod `ordinal` with the primary at `primary`, as the
        StatefulSet's pod template says after `status.postgresPrimary` = `primary`."""
        pod = self.pods[ordinal]
        prefix, _, _ = _as_server_user()
        env = {
            "PATH": f"{self.root / 'bin'}{os.pathsep}{self.bin_dir}{os.pathsep}/usr/bin:/bin",
            "HOSTNAME": pod.name,
            "PGDATA": str(pod.data),
            "PGPORT": str(pod.port),
            "POSTGRES_USER": SUPERUSER,
            "POSTGRES_PASSWORD": self.passwords["superuser"],
            "POSTGRES_READONLY_PASSWORD": self.passwords["readonly"],
            "POSTGRES_REPLICATION_PASSWORD": self.passwords["replication"],
            "PRIMARY_ORDINAL": str(primary),
            "PRIMARY_HOST": "127.0.0.1",
            "PRIMARY_PORT": str(self.pods[primary].port),
            "SOCKET_DIR": str(self.root),
            "CONFIG_DIR": str(self.config_dir),
            "POSTGRES_INITDB_ARGS": self.initdb_args,
        }
        with pod.log.open("ab") as log:
            pod.process = subprocess.Popen(
                [*prefix, "sh", str(self.config_dir / "entrypoint.sh")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return pod

    def stop(self, ordinal: int, *, crash: bool = False) -> None:
        """A fast shutdown, or with `crash` a SIGKILL: a node lost, no goodbye."""
        pod = self.pods[ordinal]
        if pod.process is None:
            return
        pod.process.send_signal(signal.SIGKILL if crash else signal.SIGINT)
        try:
            pod.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
        pod.process = None
        if crash:
            # The postmaster's children outlive it briefly; the next start must find the port.
            wait_until(lambda: _port_free(pod.port), timeout=30, what=f"{pod.name}'s port")

    def server(self, ordinal: int) -> PostgresServer:
        """Pod `ordinal`'s server as the other PostgreSQL tests see theirs."""
        pod = self.pods[ordinal]
        password = self.passwords["superuser"]
        return PostgresServer("127.0.0.1", pod.port, password, self.bin_dir, self.root)

    def connect(self, ordinal: int) -> psycopg.Connection[tuple[object, ...]]:
        return self.server(ordinal).admin()

    def wait_accepting(self, ordinal: int, timeout: float = 60) -> None:
        pod = self.pods[ordinal]

        def accepts() -> bool:
            if pod.process is not None and pod.process.poll() is not None:
                raise RuntimeError(f"{pod.name} exited:\n{self.log_of(ordinal)}")
            with self.connect(ordinal) as conn:
                conn.execute("SELECT 1")
            return True

        wait_until(
            accepts,
            timeout=timeout,
            what=f"{pod.name} to accept connections",
            ignore=(psycopg.OperationalError,),
        )

    def in_recovery(self, ordinal: int) -> bool:
        with self.connect(ordinal) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row is not None
        return bool(row[0])

    def log_of(self, ordinal: int) -> str:
        log = self.pods[ordinal].log
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""


def _port_free(port: int) -> bool:
    # As the server binds: SO_REUSEADDR, so connections in TIME_WAIT do not count.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def postgres_pods(bin_dir: Path, count: int) -> Iterator[PostgresPods]:
    """`count` pods' files laid out as the rendered StatefulSet lays them out; none started."""
    _, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="duet-pg-pods-"))
    pods: PostgresPods | None = None
    try:
        (root / "bin").mkdir()
        shim = root / "bin" / "docker-entrypoint.sh"
        shim.write_text(SHIM)
        shim.chmod(0o755)
        config = root / "config"
        config.mkdir()
        # The rendered files, with the config directory where the test has it and the
        # server's socket and address where a test may put them.
        script = postgres.ENTRYPOINT.replace(postgres.CONFIG_DIR, str(config))
        conf = postgres.postgresql_conf("256Mi") + (
            f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\nfsync = off\n"
        )
        (config / "entrypoint.sh").write_text(script)
        (config / "postgresql.conf").write_text(conf)
        (config / "pg_hba.conf").write_text(postgres.HBA)
        (config / "init-roles.sh").write_text(postgres.INIT_SQL_SCRIPT)
        members = []
        for ordinal in range(count):
            base = root / f"pg-{ordinal}"
            base.mkdir()
            members.append(Pod(ordinal, free_port(), base, root / f"pg-{ordinal}.log"))
        if uid is not None and gid is not None:
            for path in [root, *root.rglob("*")]:
                os.chown(path, uid, gid)
        roles = ("superuser", "readonly", "replication")
        passwords = {role: f"{role}-{os.urandom(6).hex()}" for role in roles}
        pods = PostgresPods(root, bin_dir, passwords, members)
        yield pods
    finally:
        if pods is not None:
            for pod in pods.pods:
                pods.stop(pod.ordinal)
        shutil.rmtree(root, ignore_errors=True)
