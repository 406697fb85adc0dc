"""The DataPlatform reconcile loop against the real API server, controllers and kwok nodes:
apply -> Ready, update -> rescaled, drift -> restored, delete -> as deletionPolicy says, and
an operator killed mid-reconcile converging when it comes back."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from duet_operator.models import GROUP, VERSION
from tests.support.crds import create_custom_object, install_crds
from tests.support.operator import OperatorProcess
from tests.support.wait import WaitTimeoutError, wait_until

pytestmark = pytest.mark.integration

READY = 90
PLATFORM_LABEL = "duet.aidatalabs.ai/platform"


def body(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"requirements": {"dataVolume": "100Gi"}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataPlatform",
        "metadata": {"name": name},
        "spec": base | spec,
    }


def get(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", name
    )
    return found


def patch_spec(custom: Any, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "dataplatforms", name, {"spec": spec}
    )


def condition(platform: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = platform.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), None)


def wait_phase(
    custom: Any, namespace: str, name: str, phase: str, timeout: float = READY, **match: Any
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        platform = get(custom, namespace, name)
        status = platform.get("status", {})
        seen["status"] = {k: status.get(k) for k in ("phase", "conditions")}
        if status.get("phase") != phase:
            return None
        design = status.get("design", {}).get("clickhouse", {})
        if any(design.get(k) != v for k, v in match.items()):
            return None
        return platform

    what = f"{name} to be {phase} with {match or 'its design'}"
    try:
        return wait_until(probe, timeout=timeout, what=what)
    except WaitTimeoutError as e:
        raise WaitTimeoutError(f"{e}; its status: {seen.get('status')}") from None


def statefulsets(apps: Any, namespace: str, name: str) -> dict[str, Any]:
    found = apps.list_namespaced_stateful_set(namespace, label_selector=f"{PLATFORM_LABEL}={name}")
    return {s.metadata.name: s for s in found.items}


def events(core: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=DataPlatform,involvedObject.name={name}"
    )
    return [(e.type, e.reason) for e in found.items]


def test_a_platform_is_planned_provisioned_and_ready(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(
        custom, namespace, body("web", requirements={"dataVolume": "3Ti", "availability": "high"})
    )
    platform = wait_phase(custom, namespace, "web", "Ready")
    status = platform["status"]
    assert status["observedGeneration"] == platform["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Planned": "True",
        "Provisioned": "True",
        "Ready": "True",
    }, "no SchemaInSync with the probes off (kwok runs no ClickHouse: test_schema_in_sync)"
    design = status["design"]["clickhouse"]
    assert (design["shards"], design["replicas"], design["keeper"]["replicas"]) == (2, 2, 3)
    assert (
        status["endpoints"]["clickhouseHTTP"]
        == f"http://web-clickhouse.{namespace}.svc.cluster.local:8123"
    )
    assert status["planner"]["provider"] == "builtin"
    assert sorted(statefulsets(apps, namespace, "web")) == [
        "web-clickhouse-0", "web-clickhouse-1", "web-keeper", "web-postgres",
    ]  # fmt: skip
    pods = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/instance=web"
    ).items
    assert len(pods) == 2 * 2 + 3 + 2
    assert all(p.status.phase == "Running" for p in pods)
    assert ("Normal", "Designed") in events(core, namespace, "web")
    assert ("Normal", "AllReplicasReady") in events(core, namespace, "web")
    # No secret in status or events.
    secret = core.read_namespaced_secret("web-clickhouse-credentials", namespace)
    password = base64.b64decode(secret.data["admin-password"]).decode()
    assert password not in str(platform)
    log = duet_operator.log_path.read_text(errors="replace")
    assert password not in log
    # Requests to the API server are not logged one by one (httpx2 would, at INFO).
    assert "HTTP Request:" not in log
    assert "duet_reconcile_total" in duet_operator.metrics()


def test_requirements_change_rescales_without_losing_volumes(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("grow"))
    wait_phase(custom, namespace, "grow", "Ready", shards=1, replicas=1)
    claims_before = {
        c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items
    }
    secret_before = core.read_namespaced_secret("grow-clickhouse-credentials", namespace).data

    patch_spec(
        custom, namespace, "grow", {"requirements": {"dataVolume": "5Ti", "availability": "high"}}
    )
    platform = wait_phase(custom, namespace, "grow", "Ready", shards=3, replicas=2)
    assert platform["status"]["design"]["clickhouse"]["keeper"]["replicas"] == 3
    sets = statefulsets(apps, namespace, "grow")
    assert {n: s.spec.replicas for n, s in sets.items() if "clickhouse" in n} == {
        "grow-clickhouse-0": 2, "grow-clickhouse-1": 2, "grow-clickhouse-2": 2,
    }  # fmt: skip
    claims_after = {
        c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items
    }
    assert claims_before <= claims_after, "every volume of the smaller platform is still there"
    assert (
        core.read_namespaced_secret("grow-clickhouse-credentials", namespace).data == secret_before
    )

    # Back to 1Ti would drop two shards and their data: refused, the design in force kept.
    patch_spec(custom, namespace, "grow", {"requirements": {"dataVolume": "1Ti"}})

    def refused() -> dict[str, Any] | None:
        planned = condition(get(custom, namespace, "grow"), "Planned")
        return planned if planned and planned["reason"] == "ShardRemovalRefused" else None

    planned = wait_until(refused, timeout=30, what="the shard removal to be refused")
    assert planned["status"] == "False"
    assert "pin spec.clickhouse.shards to 3" in planned["message"]
    assert len([n for n in statefulsets(apps, namespace, "grow") if "clickhouse-" in n]) == 3


def test_an_infeasible_budget_is_refused_with_the_minimum_cost(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("cheap", budget={"monthlyUSD": 10}))
    platform = wait_phase(custom, namespace, "cheap", "Failed", timeout=30)
    planned = condition(platform, "Planned")
    assert planned is not None
    assert (planned["status"], planned["reason"]) == ("False", "BudgetInfeasible")
    assert "raise spec.budget.monthlyUSD to at least" in planned["message"]
    assert statefulsets(apps, namespace, "cheap") == {}
    assert ("Warning", "BudgetInfeasible") in events(core, namespace, "cheap")

    patch_spec(custom, namespace, "cheap", {"budget": {"monthlyUSD": 10000}})
    wait_phase(custom, namespace, "cheap", "Ready")


def test_drift_is_undone_as_soon_as_it_is_seen(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("steady"))
    wait_phase(custom, namespace, "steady", "Ready")
    # A resync far longer than the test: what the operator repairs now, it repairs because
    # it watched the change, not because its timer came round.
    fast = duet_operator.resync_seconds
    duet_operator.restart(resync_seconds=600)
    try:
        inflict_and_await_repair(custom, core, apps, namespace)
    finally:
        duet_operator.restart(resync_seconds=fast)


def inflict_and_await_repair(custom: Any, core: Any, apps: Any, namespace: str) -> None:
    core.delete_namespaced_service("steady-clickhouse", namespace)
    core.delete_namespaced_config_map("steady-clickhouse-config", namespace)
    apps.patch_namespaced_stateful_set("steady-clickhouse-0", namespace, {"spec": {"replicas": 3}})
    apps.delete_namespaced_stateful_set("steady-postgres", namespace)

    def restored() -> bool:
        try:
            core.read_namespaced_service("steady-clickhouse", namespace)
            core.read_namespaced_config_map("steady-clickhouse-config", namespace)
            postgres = apps.read_namespaced_stateful_set("steady-postgres", namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        clickhouse = apps.read_namespaced_stateful_set("steady-clickhouse-0", namespace)
        return bool(clickhouse.spec.replicas == 1 and postgres.metadata.deletion_timestamp is None)

    wait_until(restored, timeout=30, what="the deleted and scaled children to be put back")
    wait_phase(custom, namespace, "steady", "Ready")


def test_a_resync_of_a_healthy_platform_writes_nothing(
    duet_operator: OperatorProcess, custom: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("quiet"))
    wait_phase(custom, namespace, "quiet", "Ready")

    def versions() -> dict[str, str]:
        found = {
            n: s.metadata.resource_version
            for n, s in statefulsets(apps, namespace, "quiet").items()
        }
        return found | {"platform": get(custom, namespace, "quiet")["metadata"]["resourceVersion"]}

    # Ready is reported from the StatefulSets' status, whose last updates may still trickle
    # in: settled means two reads a resync period apart agree.
    def settled() -> dict[str, str] | None:
        first = versions()
        time.sleep(duet_operator.resync_seconds)
        return first if versions() == first else None

    before = wait_until(settled, timeout=30, what="the platform to settle")
    sent = duet_operator.metric("duet_applied_objects_total")
    resyncs = duet_operator.metric("duet_reconcile_total", kind="DataPlatformResync")
    # Three more resync periods: the drift timer compares everything, sends nothing and
    # writes nothing.
    with pytest.raises(WaitTimeoutError):
        wait_until(
            lambda: versions() != before,
            timeout=3 * duet_operator.resync_seconds,
            what="a write",
        )
    assert duet_operator.metric("duet_applied_objects_total") == sent, (
        "a resync applied objects that were in step"
    )
    # The timer's reconciles are timed apart from those a change asks for.
    assert duet_operator.metric("duet_reconcile_total", kind="DataPlatformResync") >= resyncs + 2


@pytest.mark.parametrize(("policy", "kept"), [("Retain", True), ("Delete", False)])
def test_deletion_honours_the_deletion_policy(
    duet_operator: OperatorProcess,
    custom: Any,
    core: Any,
    apps: Any,
    namespace: str,
    policy: str,
    kept: bool,
) -> None:
    backups = {"schedule": "0 2 * * *", "retention": 2, "target": {"pvc": {"size": "10Gi"}}}
    create_custom_object(custom, namespace, body("gone", deletionPolicy=policy, backup=backups))
    wait_phase(custom, namespace, "gone", "Ready")

    def claims_made() -> list[str] | None:
        listed = core.list_namespaced_persistent_volume_claim(namespace).items
        names = [c.metadata.name for c in listed]
        return names if "gone-backups" in names else None

    claims = wait_until(claims_made, timeout=30, what="the platform's claims, backups' included")

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatforms", "gone")

    def platform_gone() -> bool:
        try:
            get(custom, namespace, "gone")
        except ApiException as e:
            return bool(e.status == 404)
        return False

    wait_until(platform_gone, timeout=30, what="the finalizer to let the platform go")
    wait_until(
        lambda: not statefulsets(apps, namespace, "gone"),
        timeout=30,
        what="children to be collected",
    )
    remaining_claims = {
        c.metadata.name
        for c in core.list_namespaced_persistent_volume_claim(namespace).items
        if not c.metadata.deletion_timestamp
    }
    secrets = {
        s.metadata.name
        for s in core.list_namespaced_secret(
            namespace, label_selector=f"{PLATFORM_LABEL}=gone"
        ).items
    }
    if kept:
        assert remaining_claims == set(claims)
        assert secrets == {"gone-clickhouse-credentials", "gone-postgres-credentials"}
    else:
        assert remaining_claims == {"gone-backups"}, "backups are for when the platform is gone"
        assert secrets == set()


def test_an_operator_killed_mid_reconcile_converges_on_restart(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("phoenix", requirements={"dataVolume": "3Ti"}))
    # Kill it as soon as it has started on this platform: some children may exist, not all.
    wait_until(lambda: statefulsets(apps, namespace, "phoenix"), timeout=30, what="the first child")
    duet_operator.kill()
    duet_operator.start()
    platform = wait_phase(custom, namespace, "phoenix", "Ready")
    assert sorted(statefulsets(apps, namespace, "phoenix")) == [
        "phoenix-clickhouse-0",
        "phoenix-clickhouse-1",
        "phoenix-keeper",
        "phoenix-postgres",
    ]
    secrets = core.list_namespaced_secret(
        namespace, label_selector=f"{PLATFORM_LABEL}=phoenix"
    ).items
    assert sorted(s.metadata.name for s in secrets) == [
        "phoenix-clickhouse-credentials",
        "phoenix-postgres-credentials",
    ]
    # kopf posts Events after the status write: wait for the one, then make sure of no two.
    wait_until(
        lambda: ("Normal", "AllReplicasReady") in events(core, namespace, "phoenix"),
        timeout=30,
        what="the AllReplicasReady Event",
    )
    time.sleep(2)
    reasons = [r for _, r in events(core, namespace, "phoenix")]
    assert reasons.count("AllReplicasReady") == 1
    assert platform["status"]["conditions"]


@contextlib.contextmanager
def an_older_crd(api_client: Any) -> Iterator[None]:
    """The DataPlatform CRD as an older release might have left it: a spec the API server
    no longer checks. Restored afterwards, whatever happens."""
    ext = client.ApiextensionsV1Api(api_client)
    name = f"dataplatforms.{GROUP}"
    crd = ext.read_custom_resource_definition(name)
    loose = client.V1JSONSchemaProps(type="object", x_kubernetes_preserve_unknown_fields=True)
    crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"] = loose
    ext.replace_custom_resource_definition(name, crd)
    try:
        yield
    finally:
        install_crds(api_client)


def test_a_spec_the_model_refuses_is_reported_once_and_still_deletable(
    duet_operator: OperatorProcess, api_client: Any, custom: Any, core: Any, namespace: str
) -> None:
    with an_older_crd(api_client):
        wrong = body("odd", requirements={"dataVolume": "100Gi", "availability": "extreme"})
        wait_until(
            lambda: create_custom_object(custom, namespace, wrong),
            timeout=30,
            what="the loosened CRD to admit the object",
            ignore=(ApiException,),
        )
        platform = wait_phase(custom, namespace, "odd", "Failed")
        planned = condition(platform, "Planned")
        assert planned is not None
        assert planned["status"] == "False"
        assert planned["reason"] == "InvalidSpec"
        assert "spec.requirements.availability" in planned["message"]
        # Refused for good: a resync later, still the one Event.
        time.sleep(duet_operator.resync_seconds + 1)
        refusals = [e for e in events(core, namespace, "odd") if e[1] == "InvalidSpec"]
        assert len(refusals) == 1

        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "dataplatforms", "odd")

        def platform_gone() -> bool:
            try:
                get(custom, namespace, "odd")
            except ApiException as e:
                return bool(e.status == 404)
            return False

        wait_until(platform_gone, timeout=30, what="the finalizer to let the platform go")


def watch_statefulset(
    apps: Any, namespace: str, name: str, until: Any, timeout: float = READY
) -> list[tuple[int, int]]:
    """Every (spec.replicas, status.readyReplicas) the StatefulSet `name` went through, as
    the API server told them, until `until(replicas, ready)` holds."""
    seen: list[tuple[int, int]] = []
    stream = watch.Watch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in stream.stream(
            apps.list_namespaced_stateful_set,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        ):
            sts = event["object"]
            state = (sts.spec.replicas, sts.status.ready_replicas or 0)
            if not seen or seen[-1] != state:
                seen.append(state)
            if until(*state):
                stream.stop()
                return seen
    raise WaitTimeoutError(f"{name} never reached the state awaited; went through {seen}")


def test_keeper_members_change_one_at_a_time(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    pinned = {"replicas": 2, "keeper": {"replicas": 3}}
    create_custom_object(custom, namespace, body("quorum", clickhouse=pinned))
    wait_phase(custom, namespace, "quorum", "Ready")

    patch_spec(custom, namespace, "quorum", {"clickhouse": {"keeper": {"replicas": 5}}})
    seen = watch_statefulset(apps, namespace, "quorum-keeper", lambda r, ready: ready == 5)
    members = [replicas for replicas, _ in seen]
    assert sorted(set(members)) == [3, 4, 5]
    assert members == sorted(members), f"members only grew: {seen}"
    # The fifth member was asked for only once the fourth had joined and was Ready.
    before_five = seen[[r for r, _ in seen].index(5) - 1]
    assert before_five == (4, 4), f"went through {seen}"
    wait_phase(custom, namespace, "quorum", "Ready")
    assert ("Normal", "KeeperMembership") in events(core, namespace, "quorum")


def test_replicas_are_removed_only_with_consent_and_their_volumes_kept(
    duet_operator: OperatorProcess, custom: Any, core: Any, apps: Any, namespace: str
) -> None:
    create_custom_object(custom, namespace, body("trim", clickhouse={"replicas": 3}))
    wait_phase(custom, namespace, "trim", "Ready", replicas=3)

    patch_spec(custom, namespace, "trim", {"clickhouse": {"replicas": 2}})

    def refused() -> dict[str, Any] | None:
        planned = condition(get(custom, namespace, "trim"), "Planned")
        return planned if planned and planned["reason"] == "ReplicaRemovalRefused" else None

    planned = wait_until(refused, timeout=30, what="the replica removal to be refused")
    assert planned["status"] == "False"
    assert "spec.scaleDown.allowReplicaRemoval" in planned["message"]
    assert statefulsets(apps, namespace, "trim")["trim-clickhouse-0"].spec.replicas == 3

    patch_spec(custom, namespace, "trim", {"scaleDown": {"allowReplicaRemoval": True}})
    wait_phase(custom, namespace, "trim", "Ready", replicas=2)
    assert statefulsets(apps, namespace, "trim")["trim-clickhouse-0"].spec.replicas == 2
    claims = core.list_namespaced_persistent_volume_claim(namespace).items
    assert "data-trim-clickhouse-0-2" in {c.metadata.name for c in claims}, (
        "the removed replica's volume is kept"
    )
