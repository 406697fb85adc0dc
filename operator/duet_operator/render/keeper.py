"""ClickHouse Keeper: the Raft quorum that coordinates replication and distributed DDL."""

from __future__ import annotations

from duet_agents.planner.models import PlatformDesign
from duet_operator.models import DataPlatform
from duet_operator.render import objects as o
from duet_operator.render.config import RenderConfig
from duet_operator.render.naming import Names, claim_labels, labels, selector
from duet_operator.render.xml import from_env, to_xml

CLIENT_PORT = 2181
RAFT_PORT = 9234
METRICS_PORT = 9363
DATA_DIR = "/var/lib/clickhouse-keeper"
CONFIG_DIR = "/etc/clickhouse-keeper"
APP = "clickhouse-keeper"


def keeper_config(names: Names, replicas: int, joining: int | None = None) -> str:
    """Keeper's configuration for `replicas` members; the member of ordinal `joining` (one
    being added to a running ensemble) starts as a follower, so that it waits for the leader
    instead of calling elections among members that do not know it yet."""
    servers: list[dict[str, object]] = [
        {"id": i + 1, "hostname": names.keeper_host(i), "port": RAFT_PORT} for i in range(replicas)
    ]
    if joining is not None and joining < replicas:
        servers[joining]["start_as_follower"] = "true"
    return to_xml(
        {
            "listen_host": "0.0.0.0",
            "logger": {"console": 1, "level": "information"},
            "keeper_server": {
                "tcp_port": CLIENT_PORT,
                # Each member learns its Raft id from its pod ordinal (see the command below).
                "server_id": from_env("KEEPER_SERVER_ID"),
                "log_storage_path": f"{DATA_DIR}/log",
                "snapshot_storage_path": f"{DATA_DIR}/snapshots",
                "coordination_settings": {
                    "operation_timeout_ms": 10000,
                    "session_timeout_ms": 30000,
                    "raft_logs_level": "warning",
                },
                "raft_configuration": {"server": servers},
            },
            "prometheus": {
                "endpoint": "/metrics",
                "port": METRICS_PORT,
                "metrics": True,
                "events": True,
                "asynchronous_metrics": True,
            },
        }
    )


def build_keeper(
    platform: DataPlatform,
    design: PlatformDesign,
    config: RenderConfig,
    members: int | None = None,
    joining: int | None = None,
) -> list[o.Manifest]:
    """Keeper's objects, with `members` servers (default: the design's; fewer or more while
    a membership change steps towards it, `joining` the ordinal being added: membership.py)."""
    keeper = design.clickhouse.keeper
    if keeper.replicas == 0:
        return []
    members = keeper.replicas if members is None else members
    names = Names(platform.metadata.name, platform.metadata.namespace or "", config.cluster_domain)
    version = design.clickhouse.version
    meta_labels = labels(names.platform, APP, "keeper", version)
    select = selector(names.platform, APP)
    config_xml = keeper_config(names, members, joining)
    ports = {"client": CLIENT_PORT, "raft": RAFT_PORT, "metrics": METRICS_PORT}

    container = {
        "name": "keeper",
        "image": f"{config.keeper_image}:{version}",
        "command": [
            "/bin/sh",
            "-c",
            "export KEEPER_SERVER_ID=$(( ${HOSTNAME##*-} + 1 )) && exec "
            f"clickhouse-keeper --config-file={CONFIG_DIR}/keeper_config.xml",
        ],
        "ports": o.container_ports(ports),
        "resources": o.container_resources(keeper.resources),
        "securityContext": o.CONTAINER_SECURITY,
        "readinessProbe": {"tcpSocket": {"port": "client"}, "periodSeconds": 5},
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "config", "mountPath": CONFIG_DIR},
        ],
    }
    statefulset = o.statefulset(
        platform,
        o.Workload(
            name=names.keeper,
            labels=meta_labels,
            selector=select,
            claim_labels=claim_labels(names.platform, APP),
            service=names.keeper_headless,
            replicas=members,
            # Members must all start for the quorum to form; an ordered start would wait
            # forever for member 0 to be Ready, which needs a quorum.
            pod_management="Parallel",
            # Keeper reads a changed member list from its file; restarting every member
            # for it, in the middle of a membership change, would only risk the quorum.
            config_hash=o.content_hash(keeper_config(names, 0)),
            config_map=names.keeper_config,
            run_as=101,
            containers=[container],
            storage=keeper.storage,
        ),
    )
    manifests = [
        o.config_map(platform, names.keeper_config, meta_labels, {"keeper_config.xml": config_xml}),
        o.service(platform, names.keeper_headless, meta_labels, select, ports, headless=True),
        o.service(platform, names.keeper, meta_labels, select, {"client": CLIENT_PORT}),
        statefulset,
    ]
    if members >= 3:
        manifests.append(o.disruption_budget(platform, names.keeper, meta_labels, select))
    return manifests
