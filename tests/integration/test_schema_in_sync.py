"""SchemaInSync on the local control plane: a platform scaled out from one ClickHouse host to
two shards of two replicas, whose hosts are real ClickHouse engines (chDB, one process per
host, behind ClickHouse's HTTP interface: tests/support/clickhouse_http.py) reached through
DUET_PROBE_URLS. The operator gives the three new hosts the first one's databases and tables
before the platform is Ready, and gives them again to a replica that comes back empty."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duet_operator.models import GROUP, VERSION
from tests.integration.test_schema_sync import SCHEMA, user_tables
from tests.support.clickhouse_http import ClickHouseHost, clickhouse_hosts
from tests.support.crds import create_custom_object
from tests.support.operator import OperatorProcess, serving
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
PLATFORM = "wide"
PODS = [f"{PLATFORM}-clickhouse-{shard}-{replica}" for shard in (0, 1) for replica in (0, 1)]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[ClickHouseHost]]:
    macros = [{"shard": pod[-3], "replica": pod} for pod in PODS]
    with clickhouse_hosts(tmp_path / "hosts", len(PODS), macros=macros) as started:
        first = started[0].client()
        for statement in SCHEMA:
            first.command(statement)
        first.close()
        yield started


@pytest.fixture
def operator(
    kubeconfig: Path, crds: list[str], tmp_path: Path, hosts: list[ClickHouseHost]
) -> Iterator[OperatorProcess]:
    urls = {pod: host.clickhouse_url() for pod, host in zip(PODS, hosts, strict=True)}
    process = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        namespaces="schema-*",
        env={"DUET_PROBE_URLS": json.dumps(urls)},
    )
    with serving(process):
        yield process


def platform(custom: Any, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", PLATFORM
    )
    return found


def schema_condition(custom: Any, namespace: str) -> dict[str, Any] | None:
    conditions = platform(custom, namespace).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "SchemaInSync"), None)


def ready_with(custom: Any, namespace: str, shards: int, replicas: int) -> dict[str, Any] | None:
    found = platform(custom, namespace)
    status = found.get("status", {})
    design = status.get("design", {}).get("clickhouse", {})
    if status.get("phase") != "Ready" or (design.get("shards"), design.get("replicas")) != (
        shards,
        replicas,
    ):
        return None
    return found


def tables_of(host: ClickHouseHost) -> dict[str, str]:
    client = host.client()
    try:
        return user_tables(client)
    finally:
        client.close()


def test_new_hosts_get_the_clusters_tables_before_the_platform_is_ready(
    operator: OperatorProcess,
    hosts: list[ClickHouseHost],
    custom: Any,
    core: Any,
    make_namespace: Callable[[str], str],
) -> None:
    namespace = make_namespace("schema")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": PLATFORM},
        "spec": {
            "requirements": {"dataVolume": "50Gi"},
            "clickhouse": {"shards": 1, "replicas": 1},
        },
    }
    create_custom_object(custom, namespace, body)
    wait_until(lambda: ready_with(custom, namespace, 1, 1), timeout=90, what="one host Ready")
    single = schema_condition(custom, namespace)
    assert single is not None
    assert (single["status"], single["reason"]) == ("True", "InStep")
    expected = tables_of(hosts[0])
    assert len(expected) > 10
    assert all(tables_of(h) == {} for h in hosts[1:]), "the new hosts start empty"

    # Scale out to two shards of two replicas: three empty hosts join.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", PLATFORM,
        {"spec": {"clickhouse": {"shards": 2, "replicas": 2}}},
    )  # fmt: skip
    ready = wait_until(
        lambda: ready_with(custom, namespace, 2, 2), timeout=120, what="four hosts Ready"
    )
    synced = next(c for c in ready["status"]["conditions"] if c["type"] == "SchemaInSync")
    assert (synced["status"], synced["reason"]) == ("True", "Replayed"), synced
    assert "all 4 hosts" in synced["message"]
    for host in hosts[1:]:
        assert tables_of(host) == expected, f"{host.name} has every table, defined the same"

    # A replica comes back without its data (its volume replaced): once its pod is Ready
    # again, it is given the tables again.
    lost = hosts[3].client()
    for database in ("sales", "shop"):
        lost.command(f"DROP DATABASE {database} SYNC")
    lost.close()
    assert tables_of(hosts[3]) == {}
    core.delete_namespaced_pod(PODS[3], namespace)
    wait_until(
        lambda: tables_of(hosts[3]) == expected,
        timeout=90,
        what=f"{PODS[3]} to be given the tables again",
    )
    wait_until(lambda: ready_with(custom, namespace, 2, 2), timeout=60, what="Ready again")
