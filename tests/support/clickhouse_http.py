"""Independent ClickHouse hosts for tests: chDB behind ClickHouse's HTTP interface.

No ClickHouse server can run here, and chDB holds one data directory per process, so one
process cannot reach two "hosts" through it. Each host here is a subprocess serving chDB on
its own data directory over HTTP on a loopback port (tests/support/clickhouse_http_server.py
says how much of the interface), reached exactly as the operator reaches real servers:

    with clickhouse_hosts(tmp_path, 2, macros=[{"shard": "1", "replica": "a"}, ...]) as hosts:
        client = hosts[0].client()               # clickhouse-connect's HTTP client
        probe_urls = {"web-clickhouse-0-0": hosts[0].clickhouse_url()}

A host answers `system.macros` from its config, as a real host does. Hosts stop with the
context, and on their own when the process that started them goes (they watch their stdin).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import clickhouse_connect
from clickhouse_connect.driver.client import Client

REPO = Path(__file__).resolve().parents[2]
SERVER_MODULE = "tests.support.clickhouse_http_server"
DEFAULT_USER = "admin"
STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class ClickHouseHost:
    """A running host: where it listens, its login, its data, its process."""

    name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    data_dir: Path
    macros: Mapping[str, str]
    # From process start to the first answer: chDB's import and engine start.
    startup_seconds: float
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    log_path: Path = field(repr=False)

    @property
    def url(self) -> str:
        """`http://user:password@127.0.0.1:port`."""
        return f"http://{self._login()}@{self.host}:{self.port}"

    def clickhouse_url(self, database: str | None = None) -> str:
        """The URL the operator and the query engines take (`clickhouse://...`)."""
        return f"clickhouse://{self._login()}@{self.host}:{self.port}/{quote(database or '')}"

    def client(self, **options: Any) -> Client:
        """clickhouse-connect's HTTP client, logged in; `options` go to get_client."""
        return clickhouse_connect.get_client(
            host=self.host,
            port=self.port,
            username=self.user,
            password=self.password,
            **options,
        )

    def stop(self) -> None:
        """End the host (closing its stdin asks it to; a host that hangs is killed)."""
        _stop(self.process)

    def _login(self) -> str:
        return f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"


def config_xml(macros: Mapping[str, str], display_name: str) -> str:
    """The ClickHouse config chDB starts the host's engine with."""
    root = ElementTree.Element("clickhouse")
    ElementTree.SubElement(root, "display_name").text = display_name
    ElementTree.SubElement(root, "timezone").text = "UTC"
    element = ElementTree.SubElement(root, "macros")
    for name, value in sorted(macros.items()):
        ElementTree.SubElement(element, name).text = value
    return ElementTree.tostring(root, encoding="unicode")


@contextlib.contextmanager
def clickhouse_hosts(
    directory: Path,
    count: int,
    *,
    macros: Sequence[Mapping[str, str]] | None = None,
    user: str = DEFAULT_USER,
) -> Iterator[list[ClickHouseHost]]:
    """`count` hosts with data under `directory` (host-0, host-1, ...), started together;
    `macros[i]` is host i's `system.macros`. All are stopped when the context ends."""
    if macros is not None and len(macros) != count:
        raise ValueError(f"macros for {len(macros)} hosts, but {count} hosts asked for")
    starting: list[_Starting] = []
    hosts: list[ClickHouseHost] = []
    try:
        for index in range(count):
            host_macros = dict(macros[index]) if macros is not None else {}
            starting.append(_spawn(directory / f"host-{index}", host_macros, user))
        hosts.extend(_ready(s) for s in starting)
        yield hosts
    finally:
        _stop(*(s.process for s in starting))


@dataclass
class _Starting:
    name: str
    directory: Path
    user: str
    password: str = field(repr=False)
    macros: dict[str, str]
    process: subprocess.Popen[bytes]
    started: float


def _spawn(directory: Path, macros: dict[str, str], user: str) -> _Starting:
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    name = directory.name
    config = directory / "config.xml"
    config.write_text(config_xml(macros, name))
    password = secrets.token_urlsafe(16)
    with (directory / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                SERVER_MODULE,
                "--data",
                str(data),
                "--config",
                str(config),
                "--user",
                user,
                "--display-name",
                name,
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    started = time.monotonic()
    assert process.stdin is not None
    # The password goes by pipe, not argv or the environment, where others could read it.
    process.stdin.write(password.encode() + b"\n")
    process.stdin.flush()
    return _Starting(name, directory, user, password, macros, process, started)


def _ready(starting: _Starting) -> ClickHouseHost:
    """The host once it prints its port, or an error with its log's tail."""
    process = starting.process
    assert process.stdout is not None
    deadline = starting.started + STARTUP_TIMEOUT_SECONDS
    readable: list[Any] = []
    while not readable and process.poll() is None and time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
    line = process.stdout.readline() if readable else b""
    if not line:
        _stop(process)
        log = (starting.directory / "server.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(
            f"ClickHouse host {starting.name} did not start (exit code {process.returncode})"
            f"\n--- its log ---\n{log}"
        )
    process.stdout.close()
    ready = json.loads(line)
    return ClickHouseHost(
        name=starting.name,
        host="127.0.0.1",
        port=int(ready["port"]),
        user=starting.user,
        password=starting.password,
        data_dir=starting.directory / "data",
        macros=starting.macros,
        startup_seconds=time.monotonic() - starting.started,
        process=process,
        log_path=starting.directory / "server.log",
    )


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """Ask all to stop at once, then wait for each; kill one that hangs."""
    for process in processes:
        if process.stdin is not None and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
