"""The renderers: what a design turns into, object by object."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from duet_operator import yamlio
from duet_operator.models.dataplatform import DataPlatformStatus, DeletionPolicy
from duet_operator.render.config import RenderConfig
from duet_operator.render.objects import CONFIG_HASH_ANNOTATION
from duet_operator.render.platform import build_platform
from duet_operator.render.xml import to_xml
from tests.support.platforms import SECRETS, design, platform

SNAPSHOT = Path(__file__).parent / "snapshots" / "platform-2x2-ha.yaml"
CONFIG = RenderConfig()


def render(**kwargs: Any) -> list[dict[str, Any]]:
    return build_platform(platform(), design(**kwargs), CONFIG, SECRETS)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_a_replicated_platform_has_every_part() -> None:
    manifests = render()
    assert sorted(by_kind(manifests, "StatefulSet")) == [
        "clicks-clickhouse-0",
        "clicks-clickhouse-1",
        "clicks-keeper",
        "clicks-postgres",
    ]
    assert sorted(by_kind(manifests, "Service")) == [
        "clicks-clickhouse",
        "clicks-clickhouse-headless",
        "clicks-keeper",
        "clicks-keeper-headless",
        "clicks-postgres-headless",
        "clicks-postgres-ro",
        "clicks-postgres-rw",
    ]
    assert sorted(by_kind(manifests, "PodDisruptionBudget")) == [
        "clicks-clickhouse-0",
        "clicks-clickhouse-1",
        "clicks-keeper",
        "clicks-postgres",
    ]
    assert sorted(by_kind(manifests, "Secret")) == [
        "clicks-clickhouse-credentials",
        "clicks-postgres-credentials",
    ]
    kinds = [m["kind"] for m in manifests]
    assert kinds.index("StatefulSet") > kinds.index("ConfigMap") > kinds.index("Secret")


def test_a_single_node_has_no_keeper_and_no_disruption_budgets() -> None:
    manifests = render(shards=1, replicas=1, keeper=0, postgres_instances=1)
    assert sorted(by_kind(manifests, "StatefulSet")) == ["clicks-clickhouse-0", "clicks-postgres"]
    assert by_kind(manifests, "PodDisruptionBudget") == {}
    config = ET.fromstring(
        by_kind(manifests, "ConfigMap")["clicks-clickhouse-config"]["data"]["config.xml"]
    )
    assert config.find("zookeeper") is None


def test_postgres_disabled_renders_no_postgres() -> None:
    manifests = render(postgres_instances=0)
    assert not [m for m in manifests if "postgres" in m["metadata"]["name"]]


def test_remote_servers_list_every_replica_of_every_shard() -> None:
    manifests = render(shards=3, replicas=2)
    xml = by_kind(manifests, "ConfigMap")["clicks-clickhouse-config"]["data"]["config.xml"]
    cluster = ET.fromstring(xml).find("remote_servers/default")
    assert cluster is not None
    shards = cluster.findall("shard")
    assert len(shards) == 3
    hosts = [[r.findtext("host") for r in s.findall("replica")] for s in shards]
    assert hosts[2] == [
        "clicks-clickhouse-2-0.clicks-clickhouse-headless.analytics.svc.cluster.local",
        "clicks-clickhouse-2-1.clicks-clickhouse-headless.analytics.svc.cluster.local",
    ]
    assert cluster.find("secret").attrib == {"from_env": "CLICKHOUSE_CLUSTER_SECRET"}  # type: ignore[union-attr]
    root = ET.fromstring(xml)
    assert root.find("macros/shard").attrib == {"from_env": "CLICKHOUSE_SHARD"}  # type: ignore[union-attr]
    nodes = [n.findtext("host") for n in root.findall("zookeeper/node")]
    assert nodes == [
        f"clicks-keeper-{i}.clicks-keeper-headless.analytics.svc.cluster.local" for i in range(3)
    ]


def test_each_shard_knows_its_index_and_reads_passwords_from_the_secret() -> None:
    statefulsets = by_kind(render(), "StatefulSet")
    container = statefulsets["clicks-clickhouse-1"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["CLICKHOUSE_SHARD"]["value"] == "1"
    ref = env["CLICKHOUSE_READONLY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "clicks-clickhouse-credentials", "key": "readonly-password"}
    # No password appears anywhere but in the Secrets.
    for manifest in render():
        if manifest["kind"] != "Secret":
            assert "readonly-pw" not in yaml.safe_dump(manifest)


def test_the_readonly_user_is_read_only_in_the_database_itself() -> None:
    users = ET.fromstring(
        by_kind(render(), "ConfigMap")["clicks-clickhouse-config"]["data"]["users.xml"]
    )
    assert users.findtext("users/readonly/profile") == "readonly"
    assert users.findtext("profiles/readonly/readonly") == "1"
    assert [ip.text for ip in users.findall("users/default/networks/ip")] == ["::1", "127.0.0.1"]


def test_keeper_members_are_a_raft_quorum() -> None:
    manifests = render(keeper=3)
    xml = by_kind(manifests, "ConfigMap")["clicks-keeper-config"]["data"]["keeper_config.xml"]
    servers = ET.fromstring(xml).findall("keeper_server/raft_configuration/server")
    assert [s.findtext("id") for s in servers] == ["1", "2", "3"]
    keeper = by_kind(manifests, "StatefulSet")["clicks-keeper"]["spec"]
    assert keeper["podManagementPolicy"] == "Parallel"
    assert (
        "KEEPER_SERVER_ID=$(( ${HOSTNAME##*-} + 1 ))"
        in keeper["template"]["spec"]["containers"][0]["command"][2]
    )


def test_children_are_owned_by_the_platform_except_secrets() -> None:
    for manifest in render():
        owners = manifest["metadata"].get("ownerReferences", [])
        if manifest["kind"] == "Secret":
            assert owners == []
        else:
            assert owners == [
                {
                    "apiVersion": "duet.aidatalabs.ai/v1alpha1",
                    "kind": "DataPlatform",
                    "name": "clicks",
                    "uid": "0b5c7a1e-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        assert manifest["metadata"]["labels"]["duet.aidatalabs.ai/platform"] == "clicks"
        assert manifest["metadata"]["namespace"] == "analytics"


@pytest.mark.parametrize(("policy", "expected"), [("Retain", "Retain"), ("Delete", "Delete")])
def test_volumes_follow_the_deletion_policy_and_survive_scale_down(
    policy: str, expected: str
) -> None:
    manifests = build_platform(
        platform(deletionPolicy=DeletionPolicy(policy)), design(), CONFIG, SECRETS
    )
    for sts in by_kind(manifests, "StatefulSet").values():
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": expected,
            "whenScaled": "Retain",
        }


def test_a_config_change_rolls_the_pods_and_nothing_else_does() -> None:
    def hashes(manifests: list[dict[str, Any]]) -> dict[str, str]:
        return {
            name: sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
            for name, sts in by_kind(manifests, "StatefulSet").items()
        }

    base = hashes(render())
    assert base == hashes(render()), "rendering is deterministic"
    more_shards = hashes(render(shards=3))
    assert more_shards["clicks-clickhouse-0"] != base["clicks-clickhouse-0"]
    assert more_shards["clicks-keeper"] == base["clicks-keeper"]


def test_resources_are_guaranteed_and_storage_is_claimed() -> None:
    sts = by_kind(render(), "StatefulSet")["clicks-clickhouse-0"]["spec"]
    resources = sts["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "4", "memory": "16Gi"}
    claim = sts["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1400Gi"
    assert "storageClassName" not in claim["spec"]


def test_postgres_primary_is_pod_zero_and_standbys_clone_it() -> None:
    manifests = render(postgres_instances=2)
    services = by_kind(manifests, "Service")
    assert services["clicks-postgres-rw"]["spec"]["selector"]["apps.kubernetes.io/pod-index"] == "0"
    assert "apps.kubernetes.io/pod-index" not in services["clicks-postgres-ro"]["spec"]["selector"]
    files = by_kind(manifests, "ConfigMap")["clicks-postgres-config"]["data"]
    assert "pg_basebackup" in files["entrypoint.sh"]
    assert "shared_buffers = '512MB'" in files["postgresql.conf"]
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public TO readonly" in files["init-roles.sh"]
    assert "GRANT pg_read_all_data" not in files["init-roles.sh"], "it would expose pg_authid"


def postgres_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    (container, _) = by_kind(manifests, "StatefulSet")["clicks-postgres"]["spec"]["template"][
        "spec"
    ]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize(("promoted", "instances", "primary"), [(1, 3, "1"), (2, 2, "0")])
def test_the_primary_follows_a_promotion_while_the_design_has_it(
    promoted: int, instances: int, primary: str
) -> None:
    p = platform().model_copy(update={"status": DataPlatformStatus(postgres_primary=promoted)})
    manifests = build_platform(p, design(postgres_instances=instances), CONFIG, SECRETS)
    rw = by_kind(manifests, "Service")["clicks-postgres-rw"]["spec"]["selector"]
    assert rw["apps.kubernetes.io/pod-index"] == primary
    env = postgres_env(manifests)
    assert env["PRIMARY_ORDINAL"] == primary
    host = f"clicks-postgres-{primary}.clicks-postgres-headless.analytics.svc.cluster.local"
    assert env["PRIMARY_HOST"] == host
    # Checksums for new clusters, hint bits in the WAL: what pg_rewind needs to bring a former
    # primary back after the promotion.
    assert env["POSTGRES_INITDB_ARGS"] == "--data-checksums"
    conf = by_kind(manifests, "ConfigMap")["clicks-postgres-config"]["data"]["postgresql.conf"]
    assert "wal_log_hints = on" in conf


def test_xml_values_are_escaped_and_keys_sorted() -> None:
    xml = to_xml({"b": "x < y & z", "a": [1, 2], "c": {"@attr": "v"}})
    assert xml == (
        "<clickhouse>\n  <a>1</a>\n  <a>2</a>\n  <b>x &lt; y &amp; z</b>\n"
        '  <c attr="v" />\n</clickhouse>\n'
    )


def test_rendered_platform_matches_the_snapshot() -> None:
    text = yamlio.dump_all(render())
    if os.environ.get("DUET_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "run with DUET_UPDATE_SNAPSHOTS=1 and review the diff"
