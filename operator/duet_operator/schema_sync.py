"""Every ClickHouse host with the cluster's databases and tables: the SchemaInSync condition.

A host that joins (a scale-out, a replaced replica) starts empty, and ClickHouse does not
give it the tables its peers have (clickhouse-operator issues 903, 1689, 1703). Once every
ClickHouse StatefulSet is Ready, the operator reads each host's schema, takes the host with
the most tables as the reference, replays on the others what they lack
(`duet_agents.clickhouse`: CREATE ... IF NOT EXISTS, one host at a time, macros kept), reads
them again and reports. Ready waits for a host found lacking; a host that cannot be read
makes the condition Unknown and does not hold Ready (the operator may simply not reach the
pods), and is looked at again later.

A check that found every host in step is not repeated until the shards' StatefulSets change
(a host added, restarted or replaced), so a steady platform costs nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from duet_agents.clickhouse.clients import admin_client
from duet_agents.clickhouse.schema import HostSchema, compare
from duet_agents.clickhouse.sync import SchemaSyncError, read_host, sync_host
from duet_agents.planner.models import PlatformDesign
from duet_agents.query.engines.errors import scrub
from duet_agents.query.engines.urls import DatabaseURL
from duet_operator.kube.client import Kube
from duet_operator.observe import clickhouse_pods, clickhouse_shards, pod_ready
from duet_operator.probes import DatabaseProbes
from duet_operator.render.naming import Names
from duet_operator.status import Reason

Manifest = dict[str, Any]
# After a host could not be read: how long before trying again.
UNREADABLE_BACKOFF_SECONDS = 60.0
_LISTED = 3
_SERVER_ERROR = re.compile(r"Code: \d+\. DB::Exception: [^\n]*")


@dataclass(frozen=True)
class SchemaState:
    in_sync: bool | None  # None: not known (a host could not be read)
    reason: Reason
    message: str
    # Worth a look again soon: a replay's Replicated databases fill in by themselves.
    recheck: bool = False


@dataclass(frozen=True)
class HostReading:
    pod: str
    schema: HostSchema | None = None
    error: str | None = None


def shard_signature(names: Names, design: PlatformDesign, statefulsets: Sequence[Manifest]) -> str:
    """What changes when a ClickHouse host is added, restarted or replaced."""
    parts = []
    for sts in clickhouse_shards(names, design, statefulsets):
        name = sts["metadata"]["name"]
        status = sts.get("status") or {}
        parts.append(
            f"{name}:{sts.get('spec', {}).get('replicas')}:{status.get('readyReplicas')}"
            f":{status.get('updateRevision')}:{status.get('currentRevision')}"
            f":{status.get('observedGeneration')}"
        )
    return "|".join(parts)


@dataclass(frozen=True)
class Host:
    """A host whose schema was read, with the client that read it."""

    pod: str
    schema: HostSchema
    client: Client


def reference(hosts: Sequence[Host]) -> Host:
    """The host to take the schema from: the one with the most tables (an empty newcomer is
    never it while a peer has any), the first by name among equals."""
    return max(sorted(hosts, key=lambda h: h.pod), key=lambda h: len(h.schema.tables))


def unreadable(readings: Sequence[HostReading]) -> SchemaState:
    failed = [r for r in readings if r.error is not None]
    listed = "; ".join(f"{r.pod}: {r.error}" for r in failed[:_LISTED])
    more = f" and {len(failed) - _LISTED} more" if len(failed) > _LISTED else ""
    return SchemaState(None, Reason.SCHEMA_UNREADABLE, f"cannot read the schema of {listed}{more}")


def verdict(
    hosts: int,
    source: Host,
    replayed: Mapping[str, int],
    lacking: Mapping[str, str],
    notes: Sequence[str] = (),
) -> SchemaState:
    """The condition from what was replayed and found afterwards (pod -> what it lacks)."""
    tables = len(source.schema.tables)
    noted = f"; not replayed: {'; '.join(notes)}" if notes else ""
    if lacking:
        listed = "; ".join(f"{pod} {message}" for pod, message in list(lacking.items())[:_LISTED])
        return SchemaState(
            False,
            Reason.SCHEMA_NOT_IN_STEP,
            f"compared with {source.pod}: {listed}{noted}",
            recheck=True,
        )
    if replayed:
        given = ", ".join(sorted(replayed))
        statements = sum(replayed.values())
        return SchemaState(
            True,
            Reason.SCHEMA_REPLAYED,
            f"gave {given} the databases and tables of {source.pod} ({statements} statements);"
            f" all {hosts} hosts have its {tables} tables{noted}",
        )
    return SchemaState(
        True, Reason.SCHEMA_IN_STEP, f"all {hosts} hosts have the same {tables} tables{noted}"
    )


class SchemaSync:
    """The check and replay for every platform of one operator; remembers which platforms
    were found in step, by their shards' signature."""

    def __init__(self, kube: Kube, probes: DatabaseProbes) -> None:
        self.kube = kube
        self.probes = probes
        self.verified: dict[str, str] = {}
        self.retry_at: dict[str, float] = {}

    @property
    def timeout_seconds(self) -> float:
        return self.probes.settings.timeout_seconds

    def forget(self, key: str) -> None:
        self.verified.pop(key, None)
        self.retry_at.pop(key, None)

    async def check(
        self,
        names: Names,
        design: PlatformDesign,
        statefulsets: Sequence[Manifest],
        *,
        ready: bool,
    ) -> SchemaState | None:
        """The platform's schema state, or None when there is nothing new to say: probes
        are off, the hosts are not all Ready yet, or nothing changed since they were found
        in step."""
        if not self.probes.settings.enabled:
            return None
        key = f"{names.namespace}/{names.platform}"
        signature = shard_signature(names, design, statefulsets)
        if not ready:
            self.verified.pop(key, None)
            return None
        if self.verified.get(key) == signature:
            return None
        if time.monotonic() < self.retry_at.get(key, 0.0):
            return None
        pods = await self.ready_hosts(names)
        if len(pods) < 2:
            self.verified[key] = signature
            single = "a single host: nothing to keep in step"
            return SchemaState(True, Reason.SCHEMA_IN_STEP, single)
        state = await self.bring_in_step(names, pods)
        if state.in_sync is None:
            self.retry_at[key] = time.monotonic() + UNREADABLE_BACKOFF_SECONDS
        elif state.in_sync:
            self.verified[key] = signature
            self.retry_at.pop(key, None)
        return state

    async def ready_hosts(self, names: Names) -> list[str]:
        pods = await self.kube.list_objects("v1", "Pod", names.namespace, clickhouse_pods(names))
        serving = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
        return sorted(p["metadata"]["name"] for p in serving if pod_ready(p))

    async def bring_in_step(self, names: Names, pods: Sequence[str]) -> SchemaState:
        try:
            urls = await self.probes.clickhouse_urls(names, pods)
        except ValueError as e:
            return unreadable([HostReading(pods[0], error=str(e))])
        clients = await asyncio.gather(*(self._connect(urls[pod]) for pod in pods))
        try:
            readings = await asyncio.gather(
                *(self._read(pod, c, urls[pod]) for pod, c in zip(pods, clients, strict=True))
            )
            hosts = [
                Host(r.pod, r.schema, c)
                for r, c in zip(readings, clients, strict=True)
                if r.schema is not None and isinstance(c, Client)
            ]
            if len(hosts) < len(pods):
                return unreadable(readings)
            return await self.replay(hosts, urls)
        finally:
            for client in clients:
                if isinstance(client, Client):
                    with contextlib.suppress(Exception):
                        client.close()

    async def replay(self, hosts: Sequence[Host], urls: Mapping[str, DatabaseURL]) -> SchemaState:
        """Give every host what the reference host has and it lacks, then say where they stand."""
        source = reference(hosts)
        replayed: dict[str, int] = {}
        lacking: dict[str, str] = {}
        notes: list[str] = []
        for host in hosts:
            if host is source or compare(source.schema, host.schema).in_sync:
                continue
            # One host at a time: a replay is a few DDL statements, and hosts share Keeper.
            try:
                report = await asyncio.wait_for(
                    sync_host(source.schema, host.client), timeout=self.timeout_seconds * 10
                )
            except SchemaSyncError as e:
                lacking[host.pod] = str(e)
                continue
            except (ClickHouseError, OSError, TimeoutError) as e:
                lacking[host.pod] = f"replay failed: {_reason(e, urls[host.pod])}"
                continue
            replayed[host.pod] = report.executed
            notes = list(report.plan.notes)
            if not report.diff.in_sync:
                lacking[host.pod] = report.diff.message()
        return verdict(len(hosts), source, replayed, lacking, notes)

    async def _connect(self, url: DatabaseURL) -> Client | str:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(admin_client, url, timeout_seconds=self.timeout_seconds),
                timeout=self.timeout_seconds * 2,
            )
        except (ClickHouseError, OSError, ValueError, TimeoutError) as e:
            return _reason(e, url)

    async def _read(self, pod: str, client: Client | str, url: DatabaseURL) -> HostReading:
        if isinstance(client, str):
            return HostReading(pod, error=client)
        try:
            schema = await asyncio.wait_for(read_host(client), timeout=self.timeout_seconds * 2)
        except (ClickHouseError, OSError, TimeoutError) as e:
            return HostReading(pod, error=_reason(e, url))
        return HostReading(pod, schema=schema)


def _reason(error: BaseException, url: DatabaseURL) -> str:
    """A short reason, without the password: ClickHouse's own error when it answered,
    else what stood in the way of reaching it (the innermost cause: the client's own text
    repeats the URL and the query id)."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error)
    found = _SERVER_ERROR.search(text)
    if found is None:
        root = _innermost(error)
        if isinstance(root, socket.gaierror) or "NameResolution" in type(root).__name__:
            text = f"cannot resolve {url.host}"
        elif isinstance(root, ConnectionRefusedError):
            text = f"connection refused by {url.host}:{url.port}"
        elif isinstance(root, TimeoutError) or "Timeout" in type(root).__name__:
            text = "no answer in time"
        else:
            text = (text.strip().splitlines() or [type(error).__name__])[0]
    else:
        text = found.group(0)
    return scrub(text, [url.secret()])[:300]


def _innermost(error: BaseException) -> BaseException:
    seen = {id(error)}
    while (cause := error.__cause__ or error.__context__) is not None and id(cause) not in seen:
        seen.add(id(cause))
        error = cause
    return error
