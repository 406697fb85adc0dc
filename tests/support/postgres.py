"""A real, throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, a free port.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` OS user (which Debian's package creates) through util-linux's `setpriv`, in a temp
dir that user owns. Settings trade durability for speed: the data dies with the test run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests.support.operator import free_port
from tests.support.wait import wait_until

SUPERUSER = "postgres"
# Where Debian (and Ubuntu) install each major version's server binaries.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "40",
    "shared_buffers": "32MB",
}


def find_bin_dir(root: Path = DEBIAN_ROOT) -> Path | None:
    """The newest `<root>/<version>/bin` that holds a server, or None when there is none."""
    found = [
        path.parent
        for path in root.glob("*/bin/postgres")
        if path.is_file() and re.fullmatch(r"\d+(\.\d+)?", path.parent.parent.name)
    ]
    return max(found, key=lambda p: float(p.parent.name), default=None)


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens, how the superuser logs in, where its binaries are."""

    host: str
    port: int
    password: str
    bin_dir: Path
    socket_dir: Path

    def url(self, user: str = SUPERUSER, password: str | None = None, db: str = "postgres") -> str:
        secret = self.password if password is None else password
        return f"postgresql://{quote(user)}:{quote(secret, safe='')}@{self.host}:{self.port}/{db}"

    def admin(self, db: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection in autocommit mode, for setting up and checking data."""
        return psycopg.connect(self.url(db=db), autocommit=True)

    def client_env(self) -> dict[str, str]:
        """Environment under which libpq clients (psql, scripts) reach this server as the
        superuser, with this version's binaries first on PATH."""
        return os.environ | {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": self.password,
        }


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that drops root to the `postgres` user, and that user's ids."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        account = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise RuntimeError(
            "running as root and there is no `postgres` OS user to run the server as"
        ) from None
    prefix = [
        "setpriv",
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--clear-groups",
        "--",
    ]
    return prefix, account.pw_uid, account.pw_gid


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """Initialise and start a server from `bin_dir`, yield it, then stop it and remove its
    files."""
    prefix, uid, gid = _as_server_user()
    # Under /tmp itself, not pytest's tmp_path: its parents are root's and closed to others.
    base = Path(tempfile.mkdtemp(prefix="duet-pg-"))
    process: subprocess.Popen[bytes] | None = None
    log_path = base / "server.log"
    try:
        if uid is not None and gid is not None:
            os.chown(base, uid, gid)
        password = secrets.token_urlsafe(16)
        password_file = base / "password"
        password_file.write_text(password + "\n")
        if uid is not None and gid is not None:
            os.chown(password_file, uid, gid)
        data = base / "data"
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        password_file.unlink()
        process, port = start_postgres(bin_dir, data, base, log_path, prefix)
        server = PostgresServer("127.0.0.1", port, password, bin_dir, base)
        try:
            wait_until(
                lambda: _accepts(server, process),
                timeout=60,
                what=f"PostgreSQL on port {port} to accept connections",
                ignore=(psycopg.OperationalError,),
            )
        except (AssertionError, RuntimeError) as e:
            # The log goes with the temp dir: say what it said now.
            said = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{e}\n--- the server's log ---\n{said}") from None
        yield server
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"initdb failed: {e.stderr.decode(errors='replace')}") from None
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def start_postgres(
    bin_dir: Path, data: Path, base: Path, log_path: Path, prefix: list[str], **settings: str
) -> tuple[subprocess.Popen[bytes], int]:
    """`postgres` on the data directory `data`, started (not yet waited for) on a free
    loopback port with its socket in `base`, the tests' fast settings plus `settings`, and its
    output appended to `log_path`; `prefix` runs it as the server user."""
    port = free_port()
    every = FAST_SETTINGS | {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(base),
    }
    options = [arg for key, value in (every | settings).items() for arg in ("-c", f"{key}={value}")]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*prefix, str(bin_dir / "postgres"), "-D", str(data), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, port


def _accepts(server: PostgresServer, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"PostgreSQL exited with {process.returncode} while starting")
    with server.admin() as conn:
        conn.execute("SELECT 1")
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown: it ends sessions rather than waiting for them.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
