"""The ClickHouse cluster: one StatefulSet per shard, its replicas the StatefulSet's pods.

Every shard shares one configuration; a pod learns its shard from its StatefulSet's
environment and its replica name from its hostname, so adding a shard adds a StatefulSet and
one entry in remote_servers, and nothing else changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render import objects as o
from duet_operator.render.config import RenderConfig
from duet_operator.render.keeper import CLIENT_PORT as KEEPER_PORT
from duet_operator.render.naming import (
    CLUSTER_NAME,
    SHARD_LABEL,
    Names,
    claim_labels,
    labels,
    selector,
)
from duet_operator.render.xml import from_env, to_xml

if TYPE_CHECKING:
    # Only its shape: render/backup.py builds it, and imports this module.
    from duet_operator.render.backup import ServerBackup

HTTP_PORT = 8123
NATIVE_PORT = 9000
INTERSERVER_PORT = 9009
METRICS_PORT = 9363
PORTS = {
    "http": HTTP_PORT,
    "native": NATIVE_PORT,
    "interserver": INTERSERVER_PORT,
    "metrics": METRICS_PORT,
}
DATA_DIR = "/var/lib/clickhouse"
APP = "clickhouse"
BACKUP_FILE = "backup.xml"  # config.d: where backups may go (a path, or S3's named collection)

ADMIN_USER = "admin"
READONLY_USER = "readonly"
# Keys of the credentials Secret.
ADMIN_PASSWORD_KEY = "admin-password"
READONLY_PASSWORD_KEY = "readonly-password"
CLUSTER_SECRET_KEY = "cluster-secret"


def server_config(names: Names, design: PlatformDesign) -> str:
    ch = design.clickhouse
    shards = [
        {
            "internal_replication": True,
            "replica": [
                {"host": names.clickhouse_host(s, r), "port": NATIVE_PORT}
                for r in range(ch.replicas)
            ],
        }
        for s in range(ch.shards)
    ]
    tree: dict[str, Any] = {
        "listen_host": "0.0.0.0",
        "logger": {"console": 1, "level": "information"},
        "http_port": HTTP_PORT,
        "tcp_port": NATIVE_PORT,
        "interserver_http_port": INTERSERVER_PORT,
        # Leave headroom below the container limit for the allocator and the page cache.
        "max_server_memory_usage_to_ram_ratio": 0.85,
        "macros": {
            "cluster": CLUSTER_NAME,
            "shard": from_env("CLICKHOUSE_SHARD"),
            "replica": from_env("HOSTNAME"),
        },
        # Queries between shards run as the user who sent them, vouched for by a shared secret,
        # instead of through a passwordless default user.
        "remote_servers": {
            "@replace": "replace",
            CLUSTER_NAME: {"secret": from_env("CLICKHOUSE_CLUSTER_SECRET"), "shard": shards},
        },
        "default_replica_path": "/clickhouse/tables/{uuid}/{shard}",
        "default_replica_name": "{replica}",
        "prometheus": {
            "endpoint": "/metrics",
            "port": METRICS_PORT,
            "metrics": True,
            "events": True,
            "asynchronous_metrics": True,
        },
    }
    if ch.keeper.replicas:
        tree["zookeeper"] = {
            "node": [
                {"host": names.keeper_host(i), "port": KEEPER_PORT}
                for i in range(ch.keeper.replicas)
            ]
        }
        tree["distributed_ddl"] = {"path": "/clickhouse/task_queue/ddl"}
    return to_xml(tree)


def users_config() -> str:
    """An admin for the operator and people, a read-only user for query agents (the database's
    own guard, independent of the SQL firewall), and `default` confined to the pod itself."""
    anywhere = {"ip": ["::/0"]}
    return to_xml(
        {
            "users": {
                "default": {"networks": {"@replace": "replace", "ip": ["::1", "127.0.0.1"]}},
                ADMIN_USER: {
                    "password": from_env("CLICKHOUSE_ADMIN_PASSWORD"),
                    "networks": anywhere,
                    "profile": "default",
                    "quota": "default",
                    "access_management": 1,
                },
                READONLY_USER: {
                    "password": from_env("CLICKHOUSE_READONLY_PASSWORD"),
                    "networks": anywhere,
                    "profile": "readonly",
                    "quota": "default",
                },
            },
            "profiles": {
                "readonly": {
                    # 1: no writes and no changing settings, whatever the SQL says.
                    "readonly": 1,
                    "max_execution_time": 60,
                    "max_result_rows": 1_000_000,
                    "result_overflow_mode": "break",
                }
            },
        }
    )


def build_clickhouse(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    backup: ServerBackup | None = None,
) -> list[o.Manifest]:
    """The servers of every shard; with `backup` (spec.backup's target), what they need to
    write backups there: ClickHouse runs BACKUP on the servers themselves."""
    ch = design.clickhouse
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    meta_labels = labels(names.platform, APP, "server", ch.version)
    select = selector(names.platform, APP)
    files = {"config.xml": server_config(names, design), "users.xml": users_config()}
    if backup is not None:
        files[BACKUP_FILE] = backup.config_xml
    config_hash = o.content_hash(files)

    manifests = [
        o.config_map(platform, names.clickhouse_config, meta_labels, files),
        o.service(platform, names.clickhouse_headless, meta_labels, select, PORTS, headless=True),
        o.service(
            platform,
            names.clickhouse,
            meta_labels,
            select,
            {"http": HTTP_PORT, "native": NATIVE_PORT, "metrics": METRICS_PORT},
        ),
    ]
    for shard in range(ch.shards):
        shard_labels = meta_labels | {SHARD_LABEL: str(shard)}
        shard_select = select | {SHARD_LABEL: str(shard)}
        manifests.append(
            shard_statefulset(
                platform,
                design,
                config,
                names=names,
                shard=shard,
                meta_labels=shard_labels,
                select=shard_select,
                config_hash=config_hash,
                backup=backup,
            )
        )
        if ch.replicas > 1:
            manifests.append(
                o.disruption_budget(platform, names.shard(shard), shard_labels, shard_select)
            )
    return manifests


def shard_statefulset(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    *,
    names: Names,
    shard: int,
    meta_labels: dict[str, str],
    select: dict[str, str],
    config_hash: str,
    backup: ServerBackup | None = None,
) -> o.Manifest:
    ch = design.clickhouse
    credentials = names.clickhouse_credentials
    ping = {"httpGet": {"path": "/ping", "port": "http"}}
    env: list[dict[str, Any]] = [
        {"name": "CLICKHOUSE_SHARD", "value": str(shard)},
        o.secret_env("CLICKHOUSE_ADMIN_PASSWORD", credentials, ADMIN_PASSWORD_KEY),
        o.secret_env("CLICKHOUSE_READONLY_PASSWORD", credentials, READONLY_PASSWORD_KEY),
        o.secret_env("CLICKHOUSE_CLUSTER_SECRET", credentials, CLUSTER_SECRET_KEY),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_DIR},
        {
            "name": "config",
            "mountPath": "/etc/clickhouse-server/config.d/duet.xml",
            "subPath": "config.xml",
        },
        {
            "name": "config",
            "mountPath": "/etc/clickhouse-server/users.d/duet.xml",
            "subPath": "users.xml",
        },
    ]
    if backup is not None:
        env += backup.env
        mounts += [
            *backup.mounts,
            {
                "name": "config",
                "mountPath": f"/etc/clickhouse-server/config.d/{BACKUP_FILE}",
                "subPath": BACKUP_FILE,
            },
        ]
    container = {
        "name": "clickhouse",
        "image": f"{config.clickhouse_image}:{ch.version}",
        "env": env,
        "ports": o.container_ports(PORTS),
        "resources": o.container_resources(ch.resources),
        "securityContext": o.CONTAINER_SECURITY,
        "readinessProbe": ping | {"periodSeconds": 5},
        "livenessProbe": ping | {"periodSeconds": 10, "failureThreshold": 6},
        # Attaching a large table set can take minutes after a restart.
        "startupProbe": ping | {"periodSeconds": 5, "failureThreshold": 120},
        "volumeMounts": mounts,
    }
    manifest = o.statefulset(
        platform,
        o.Workload(
            name=names.shard(shard),
            labels=meta_labels,
            selector=select,
            claim_labels=claim_labels(names.platform, APP),
            service=names.clickhouse_headless,
            replicas=ch.replicas,
            # Replicas of a shard are peers, not a chain: start them together.
            pod_management="Parallel",
            config_hash=config_hash,
            config_map=names.clickhouse_config,
            run_as=101,
            containers=[container],
            storage=ch.storage,
            termination_grace_seconds=60,
        ),
    )
    if backup is not None:
        manifest["spec"]["template"]["spec"]["volumes"] += backup.volumes
    # The StatefulSet controller would restart the next replica as soon as the last is Ready,
    # not caught up on replication: the operator picks which pod restarts when (rollout.py).
    manifest["spec"]["updateStrategy"] = {"type": "OnDelete"}
    return manifest


def credentials_secret(
    platform: DataPlatform, names: Names, admin: str, readonly: str, cluster_secret: str
) -> o.Manifest:
    return o.secret(
        platform,
        names.clickhouse_credentials,
        labels(names.platform, APP, "credentials"),
        {
            "admin-user": ADMIN_USER,
            ADMIN_PASSWORD_KEY: admin,
            "readonly-user": READONLY_USER,
            READONLY_PASSWORD_KEY: readonly,
            CLUSTER_SECRET_KEY: cluster_secret,
        },
    )
